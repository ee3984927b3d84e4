from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from broadcasts.views import accounts, otp
from broadcasts.views.webhook import line_webhook
from kashiwa.health import healthz

admin.site.site_header = f"{settings.ACCOUNT_NAME} {settings.ACCOUNT_ID} 管理"
admin.site.site_title = f"{settings.ACCOUNT_NAME} LINE 配信管理"

urlpatterns = [
    path("accounts/login/", accounts.LoginView.as_view(), name="login"),
    path(
        "accounts/password/change/",
        accounts.PasswordChangeView.as_view(),
        name="password_change",
    ),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/otp/setup/", otp.otp_setup, name="otp_setup"),
    path("accounts/otp/verify/", otp.otp_verify, name="otp_verify"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("line/webhook/", line_webhook, name="line_webhook"),
    path("", include("broadcasts.urls")),
]
