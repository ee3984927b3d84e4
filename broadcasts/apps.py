from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class BroadcastsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "broadcasts"
    verbose_name = _("LINE 配信")

    def ready(self) -> None:
        from . import signals  # noqa: F401  (connects the audit receivers)
