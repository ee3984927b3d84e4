"""Django admin for administrators (管理者).

Broadcasts, deliveries and audit rows are read-only here: every state change goes through the
services (with their permission checks and audit rows), never through a raw admin form."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.http import HttpRequest

from . import models


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(models.User)
class UserAdmin(DjangoUserAdmin):
    fieldsets = (*DjangoUserAdmin.fieldsets, ("担当課", {"fields": ("division",)}))
    list_display = ("username", "last_name", "first_name", "division", "is_active")
    list_filter = ("groups", "division", "is_active")


@admin.register(models.Division)
class DivisionAdmin(admin.ModelAdmin):
    search_fields = ("name",)


@admin.register(models.Category)
class CategoryAdmin(admin.ModelAdmin):
    list_display = ("label", "code", "sort_order", "color", "is_emergency_default")
    readonly_fields = ("code",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # the eleven categories are fixed by policy 4(1)

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(models.CalendarOverride)
class CalendarOverrideAdmin(admin.ModelAdmin):
    list_display = ("date", "is_open", "reason", "created_by")
    readonly_fields = ("created_by",)

    def save_model(self, request, obj, form, change) -> None:  # type: ignore[override]
        from .services import calendar_override_save

        calendar_override_save(
            actor=request.user,
            date=obj.date,
            is_open=obj.is_open,
            reason=obj.reason,
        )

    def delete_model(self, request, obj) -> None:  # type: ignore[override]
        from .services import calendar_override_delete

        calendar_override_delete(actor=request.user, date=obj.date)


@admin.register(models.Follower)
class FollowerAdmin(ReadOnlyAdmin):
    list_display = ("line_user_id", "followed_at", "unfollowed_at", "is_staff_test_recipient")
    list_filter = ("is_staff_test_recipient",)
    search_fields = ("line_user_id",)


@admin.register(models.Broadcast)
class BroadcastAdmin(ReadOnlyAdmin):
    list_display = ("title", "status", "priority", "kind", "author", "scheduled_for")
    list_filter = ("status", "priority", "kind")
    search_fields = ("title",)


@admin.register(models.Delivery)
class DeliveryAdmin(ReadOnlyAdmin):
    list_display = ("broadcast", "seq", "kind", "status", "attempts", "request_id")
    list_filter = ("status", "kind")


@admin.register(models.BroadcastEvent)
class BroadcastEventAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "verb", "broadcast", "actor", "from_status", "to_status")
    list_filter = ("verb",)
