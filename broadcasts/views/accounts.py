"""Login and password screens: Django's views with the account rules of services/accounts.py
(a per-account throttle on login, a password an admin set must be replaced)."""

from __future__ import annotations

import time
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import AuthenticationForm
from django.urls import reverse_lazy
from django.utils.translation import gettext

from ..services import accounts


class ThrottledAuthenticationForm(AuthenticationForm):
    def clean(self) -> dict[str, Any]:
        username = self.cleaned_data.get("username") or ""
        if username:
            # The clock is read here, at the edge, and handed to the service.
            wait = accounts.login_throttle_wait(username=username, now=time.time())
            if wait:
                raise forms.ValidationError(
                    gettext(
                        "このアカウントへのログインの試行が続いているため、確認を遅らせています。"
                        "%(wait)d秒後にもう一度お試しください。"
                    )
                    % {"wait": wait},
                    code="throttled",
                )
        return super().clean()


class LoginView(auth_views.LoginView):
    form_class = ThrottledAuthenticationForm


class PasswordChangeView(auth_views.PasswordChangeView):
    """Also where a user whose password an admin set must go first."""

    success_url = reverse_lazy("broadcasts:dashboard")
    template_name = "registration/password_change_form.html"

    def form_valid(self, form: Any) -> Any:
        response = super().form_valid(form)
        accounts.password_changed_by_user(user=self.request.user)
        messages.success(self.request, gettext("パスワードを変更しました。"))
        return response
