"""Django admin for administrators (管理者).

Broadcasts, deliveries and audit rows are read-only here: every state change goes through the
services (with their permission checks and audit rows), never through a raw admin form."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import AdminPasswordChangeForm
from django.contrib.auth.models import Group
from django.http import HttpRequest, HttpResponseRedirect
from django.urls import reverse
from django_otp.plugins.otp_totp.models import TOTPDevice

from . import models, permissions
from .official.drafts import PLACEHOLDERS, unknown_placeholders
from .permissions import SYSTEM_AUTHOR_USERNAME


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class AdminSetPasswordForm(AdminPasswordChangeForm):
    """An admin sets another user's (forgotten) password through the audited service: the
    user must choose their own at the next login. No "unusable password" option."""

    def __init__(self, user: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(user, *args, **kwargs)
        self.fields.pop("usable_password", None)
        self.fields["password1"].required = True
        self.fields["password2"].required = True

    def save(self, commit: bool = True) -> Any:
        from .middleware import current_user
        from .services.accounts import password_set_by_admin

        password_set_by_admin(
            user=self.user, actor=current_user(), password=self.cleaned_data["password1"]
        )
        self.user.refresh_from_db()
        return self.user


@admin.register(models.User)
class UserAdmin(DjangoUserAdmin):
    """Accounts. What the web UI can never do (OWASP ASVS V4, least privilege): make anyone
    superuser or staff, or grant raw permissions — those are for ``manage.py user_flags`` and
    ``createsuperuser`` on the server. An admin cannot change their own groups or flags, and
    never sees a TOTP secret."""

    fieldsets = (
        (None, {"fields": ("username", "password")}),
        ("氏名・連絡先", {"fields": ("last_name", "first_name", "email")}),
        ("役割", {"fields": ("is_active", "groups", "must_change_password")}),
        ("コマンドラインでのみ変更できる権限", {"fields": ("is_staff", "is_superuser")}),
        ("担当課", {"fields": ("division",)}),
        ("日時", {"fields": ("last_login", "date_joined")}),
    )
    change_password_form = AdminSetPasswordForm
    list_display = ("username", "last_name", "first_name", "division", "is_active")
    list_filter = ("groups", "division", "is_active")
    actions = ("reset_second_factor", "unlock_login")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        fixed = ("is_staff", "is_superuser", "must_change_password", "last_login", "date_joined")
        if obj is not None and obj.username == SYSTEM_AUTHOR_USERNAME:
            # The author of drafts made from official information: never activated, never
            # given a password or a group (issue 15).
            return (*fixed, "username", "is_active", "groups", "last_name", "first_name", "email")
        if obj is not None and obj.pk == request.user.pk:
            return (*fixed, "is_active", "groups")
        return fixed

    def user_change_password(self, request: HttpRequest, id: str, form_url: str = "") -> Any:
        if models.User.objects.filter(pk=id, username=SYSTEM_AUTHOR_USERNAME).exists():
            messages.error(request, "自動起案用のアカウントにはパスワードを設定できません。")
            return HttpResponseRedirect(reverse("admin:broadcasts_user_changelist"))
        if str(request.user.pk) == str(id):
            messages.error(request, "自分のパスワードは「パスワードの変更」から変更してください。")
            return HttpResponseRedirect(reverse("password_change"))
        return super().user_change_password(request, id, form_url)

    @admin.action(description="選択した職員の二要素認証（認証アプリ）をリセットする")
    def reset_second_factor(self, request: HttpRequest, queryset: Any) -> None:
        from .services.accounts import AccountActionRefused, second_factor_reset

        for user in queryset:
            try:
                second_factor_reset(user=user, actor=request.user)
            except AccountActionRefused as exc:
                messages.error(request, f"{user}: {exc}")
            else:
                messages.success(
                    request,
                    f"{user} さんの認証アプリをリセットしました。次回ログイン時に登録し直します。",
                )

    @admin.action(description="選択した職員のログイン制限を解除する")
    def unlock_login(self, request: HttpRequest, queryset: Any) -> None:
        from .services.accounts import AccountActionRefused, login_unlock

        for user in queryset:
            try:
                removed = login_unlock(user=user, actor=request.user)
            except AccountActionRefused as exc:
                messages.error(request, f"{user}: {exc}")
            else:
                messages.success(
                    request, f"{user} さんのログイン制限を解除しました（{removed}件）。"
                )


admin.site.unregister(Group)


@admin.register(Group)
class GroupAdmin(ReadOnlyAdmin):
    """The four roles and their permissions are fixed by the data migration (roles.py); the
    web UI shows them but never changes them (raw permissions: command line only)."""

    list_display = ("name",)
    filter_horizontal = ("permissions",)

    def has_view_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return request.user.has_perm("auth.view_group")


if admin.site.is_registered(TOTPDevice):
    admin.site.unregister(TOTPDevice)


@admin.register(TOTPDevice)
class TOTPDeviceAdmin(ReadOnlyAdmin):
    """Who has an authenticator app, and since when. Never the secret: django-otp's own admin
    shows the key and its QR code, which would let an admin act as any supervisor."""

    list_display = ("user", "name", "confirmed", "registered_at", "last_used_at")
    fields = ("user", "name", "confirmed", "registered_at", "last_used_at")
    readonly_fields = fields
    list_filter = ("confirmed",)

    @admin.display(description="登録日時")
    def registered_at(self, obj: TOTPDevice) -> Any:
        return obj.created_at


@admin.register(models.LineLink)
class LineLinkAdmin(ReadOnlyAdmin):
    """Staff members' linked LINE accounts (approval alerts). A 管理者 sees them and removes
    one when a phone is lost or a person leaves; linking is only ever done by the person."""

    list_display = ("user", "linked_at")
    fields = ("user", "linked_at")
    readonly_fields = ("user", "linked_at")
    search_fields = ("user__username", "user__last_name", "user__first_name")
    ordering = ("user__username",)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return permissions.can_manage_accounts(request.user)

    def has_view_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return permissions.can_manage_accounts(request.user)

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return permissions.can_manage_accounts(request.user)

    def delete_model(self, request: HttpRequest, obj: models.LineLink) -> None:
        from .services import notifications

        notifications.line_link_remove(user=obj.user, actor=request.user)

    def delete_queryset(self, request: HttpRequest, queryset) -> None:
        for obj in queryset.select_related("user"):
            self.delete_model(request, obj)


@admin.register(models.Division)
class DivisionAdmin(admin.ModelAdmin):
    search_fields = ("name",)


@admin.register(models.Category)
class CategoryAdmin(admin.ModelAdmin):
    list_display = ("label", "code", "sort_order", "color", "is_emergency_default", "bit")
    readonly_fields = ("code", "bit")

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


# --- the citizen side (issue 7): every change goes through an audited service ----------------


class _MessagesForm(forms.ModelForm):
    """Reply messages are LINE message JSON, checked like a broadcast's."""

    def clean_messages(self):
        from .services.citizens import reply_messages_check

        value = self.cleaned_data["messages"]
        problems = reply_messages_check(value)
        if problems:
            raise forms.ValidationError([f"{p.field}: {p.message}" for p in problems])
        return value


class _AuditedDeleteMixin:
    """Bulk delete goes through the service one row at a time (one audit row each)."""

    def delete_queryset(self, request, queryset) -> None:
        for obj in queryset:
            self.delete_model(request, obj)


@admin.register(models.AutoReplyRule)
class AutoReplyRuleAdmin(_AuditedDeleteMixin, admin.ModelAdmin):
    form = _MessagesForm
    list_display = ("name", "match_type", "priority", "is_active", "active_from", "active_until")
    list_filter = ("is_active", "match_type")
    search_fields = ("name", "keywords")
    ordering = ("priority", "id")

    def save_model(self, request, obj, form, change) -> None:  # type: ignore[override]
        from .services.citizens import auto_reply_rule_save

        auto_reply_rule_save(rule=obj, actor=request.user)

    def delete_model(self, request, obj) -> None:  # type: ignore[override]
        from .services.citizens import auto_reply_rule_delete

        auto_reply_rule_delete(rule=obj, actor=request.user)


@admin.register(models.StandardReply)
class StandardReplyAdmin(admin.ModelAdmin):
    form = _MessagesForm
    list_display = ("kind", "updated_at")
    readonly_fields = ("kind",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # exactly two: the greeting and the default reply

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def save_model(self, request, obj, form, change) -> None:  # type: ignore[override]
        from .services.citizens import standard_reply_save

        standard_reply_save(reply=obj, actor=request.user)


@admin.register(models.PublicNotice)
class PublicNoticeAdmin(_AuditedDeleteMixin, admin.ModelAdmin):
    list_display = ("title", "is_published", "published_at", "updated_at")
    list_filter = ("is_published",)
    readonly_fields = ("published_at",)

    def save_model(self, request, obj, form, change) -> None:  # type: ignore[override]
        from .services.citizens import public_notice_save

        public_notice_save(notice=obj, actor=request.user)

    def delete_model(self, request, obj) -> None:  # type: ignore[override]
        from .services.citizens import public_notice_delete

        public_notice_delete(notice=obj, actor=request.user)


class RichMenuForm(forms.ModelForm):
    image_file = forms.FileField(
        label="画像", required=False, help_text="PNG か JPEG、2500×1686 か 2500×843、1MB 以下"
    )

    class Meta:
        model = models.RichMenu
        fields = ("name", "kind", "size", "chat_bar_text", "areas")

    def clean(self):
        from .services.richmenu import rich_menu_check

        cleaned = super().clean()
        upload = cleaned.get("image_file")
        self.image_bytes = upload.read() if upload else None
        menu = self.instance
        for field in self.Meta.fields:
            if field in cleaned:
                setattr(menu, field, cleaned[field])
        if self.image_bytes is not None:
            menu.image = self.image_bytes
        problems = rich_menu_check(menu, require_image=self.image_bytes is not None)
        if problems:
            raise forms.ValidationError([f"{p.field}: {p.message}" for p in problems])
        return cleaned


@admin.register(models.RichMenu)
class RichMenuAdmin(admin.ModelAdmin):
    form = RichMenuForm
    list_display = ("name", "kind", "size", "is_line_default", "published_at")
    readonly_fields = ("line_rich_menu_id", "published_at", "is_line_default")

    def save_model(self, request, obj, form, change) -> None:  # type: ignore[override]
        from .services.richmenu import rich_menu_save

        rich_menu_save(menu=obj, actor=request.user, image=form.image_bytes)

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False  # the ordinary and the disaster menu are both always needed


@admin.register(models.WebhookEvent)
class WebhookEventAdmin(ReadOnlyAdmin):
    list_display = ("received_at", "event_type", "line_user_id", "is_redelivery", "processed_at")
    list_filter = ("event_type", "is_redelivery")
    search_fields = ("webhook_event_id", "line_user_id")


class OfficialRuleForm(forms.ModelForm):
    class Meta:
        model = models.OfficialRule
        fields = (
            "name",
            "kind",
            "area_codes",
            "names",
            "min_intensity",
            "priority",
            "category",
            "audience",
            "template",
            "enabled",
            "sort_order",
        )

    def clean_template(self) -> str:
        template = self.cleaned_data["template"]
        unknown = unknown_placeholders(template)
        if unknown:
            names = "、".join("{" + n + "}" for n in unknown)
            known = " ".join("{" + n + "}" for n in PLACEHOLDERS)
            raise forms.ValidationError(
                f"使えない差し込み {names} があります。使えるのは {known} です。"
            )
        return template

    def clean_area_codes(self) -> str:
        value = self.cleaned_data["area_codes"].replace("、", ",").replace(" ", "")
        codes = [c for c in value.split(",") if c]
        if any(not c.isdigit() for c in codes):
            raise forms.ValidationError("地域のコードは数字をカンマで区切って入力してください。")
        return ",".join(codes)

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        kind = data.get("kind")
        if kind == models.OfficialRule.Kind.EARTHQUAKE and not data.get("min_intensity"):
            self.add_error("min_intensity", "地震の規則には震度の基準を選んでください。")
        needs_area = kind not in (
            models.OfficialRule.Kind.RIVER_FLOOD,
            models.OfficialRule.Kind.MAIL,
        )
        if kind and needs_area and not data.get("area_codes"):
            self.add_error("area_codes", "この種類の規則には対象地域のコードが必要です。")
        if kind == models.OfficialRule.Kind.RIVER_FLOOD and not data.get("names"):
            self.add_error("names", "指定河川洪水予報の規則には河川名を入力してください。")
        return data


@admin.register(models.OfficialRule)
class OfficialRuleAdmin(_AuditedDeleteMixin, admin.ModelAdmin):
    """Rules that turn official information into drafts (issue 15); every change audited."""

    form = OfficialRuleForm
    list_display = (
        "name",
        "kind",
        "area_codes",
        "names",
        "min_intensity",
        "priority",
        "audience",
        "enabled",
    )
    list_filter = ("kind", "enabled", "priority")
    ordering = ("sort_order", "id")

    def save_model(self, request, obj, form, change) -> None:  # type: ignore[override]
        from .services.official import official_rule_save

        official_rule_save(rule=obj, actor=request.user)

    def delete_model(self, request, obj) -> None:  # type: ignore[override]
        from .services.official import official_rule_delete

        official_rule_delete(rule=obj, actor=request.user)


@admin.register(models.OfficialMessage)
class OfficialMessageAdmin(ReadOnlyAdmin):
    list_display = ("received_at", "title", "info_type", "outcome", "rule", "broadcast")
    list_filter = ("outcome", "kind", "source")
    search_fields = ("title", "event_id", "headline")
    exclude = ("raw",)


@admin.register(models.OfficialFeed)
class OfficialFeedAdmin(ReadOnlyAdmin):
    list_display = ("url", "last_success_at", "consecutive_failures", "last_error_at")


# --- moderation and the policy (issue 17): every change goes through an audited service -------


@admin.register(models.ProhibitedItem)
class ProhibitedItemAdmin(ReadOnlyAdmin):
    """Policy 6's list, as adopted: changed only with the policy (a migration)."""

    list_display = ("number", "label", "text")


class _ModerationRuleForm(forms.ModelForm):
    class Meta:
        model = models.ModerationRule
        fields = ("name", "kind", "item", "patterns", "is_active")

    def clean(self):
        from .services.moderation import moderation_rule_problems

        cleaned = super().clean()
        rule = models.ModerationRule(
            **{f: cleaned.get(f) for f in ("name", "kind", "patterns", "is_active")}
        )
        problems = moderation_rule_problems(rule)
        if problems:
            raise forms.ValidationError(problems)
        return cleaned


@admin.register(models.ModerationRule)
class ModerationRuleAdmin(_AuditedDeleteMixin, admin.ModelAdmin):
    form = _ModerationRuleForm
    list_display = ("name", "kind", "item", "is_active", "updated_at")
    list_filter = ("kind", "is_active", "item")

    def save_model(self, request, obj, form, change) -> None:  # type: ignore[override]
        from .services.moderation import moderation_rule_save

        moderation_rule_save(rule=obj, actor=request.user)

    def delete_model(self, request, obj) -> None:  # type: ignore[override]
        from .services.moderation import moderation_rule_delete

        moderation_rule_delete(rule=obj, actor=request.user)


@admin.register(models.DraftRiskWordList)
class DraftRiskWordListAdmin(_AuditedDeleteMixin, admin.ModelAdmin):
    list_display = ("name", "item", "is_active", "updated_at")
    list_filter = ("is_active", "item")

    def save_model(self, request, obj, form, change) -> None:  # type: ignore[override]
        from .services.moderation import draft_word_list_save

        draft_word_list_save(word_list=obj, actor=request.user)

    def delete_model(self, request, obj) -> None:  # type: ignore[override]
        from .services.moderation import draft_word_list_delete

        draft_word_list_delete(word_list=obj, actor=request.user)


@admin.register(models.ModerationSettings)
class ModerationSettingsAdmin(admin.ModelAdmin):
    list_display = ("retention_days", "default_suppression_days", "updated_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # one row, seeded

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def save_model(self, request, obj, form, change) -> None:  # type: ignore[override]
        from .services.moderation import moderation_settings_save

        moderation_settings_save(
            retention_days=obj.retention_days,
            default_suppression_days=obj.default_suppression_days,
            actor=request.user,
        )


class _PolicyVersionForm(forms.ModelForm):
    class Meta:
        model = models.PolicyVersion
        fields = ("title", "body", "enacted_on", "amended_on", "effective_on", "summary")

    def clean(self):
        from .services.policy import policy_version_problems

        cleaned = super().clean()
        version = models.PolicyVersion(**{f: cleaned.get(f) for f in self.Meta.fields})
        problems = policy_version_problems(version)
        if problems:
            raise forms.ValidationError([p.message for p in problems])
        return cleaned


@admin.register(models.PolicyVersion)
class PolicyVersionAdmin(_AuditedDeleteMixin, admin.ModelAdmin):
    """Drafts are edited here; 「公開する」 publishes (public page from the 施行日, and an
    announcement broadcast waiting for approval). A published version never changes."""

    form = _PolicyVersionForm
    list_display = ("title", "status", "enacted_on", "amended_on", "effective_on", "published_at")
    list_filter = ("status",)
    readonly_fields = ("status", "published_at", "published_by", "announcement")
    actions = ("publish",)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None and obj.status != models.PolicyVersion.Status.DRAFT:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None and obj.status != models.PolicyVersion.Status.DRAFT:
            return False
        return super().has_delete_permission(request, obj)

    def save_model(self, request, obj, form, change) -> None:  # type: ignore[override]
        from .services.policy import policy_version_save

        policy_version_save(version=obj, actor=request.user)

    def delete_model(self, request, obj) -> None:  # type: ignore[override]
        from .services.policy import policy_version_delete

        policy_version_delete(version=obj, actor=request.user)

    @admin.action(description="選択した版を公開する（お知らせの配信を承認待ちで作成）")
    def publish(self, request: HttpRequest, queryset: Any) -> None:
        from django.utils import timezone

        from .services.errors import BroadcastInvalid
        from .services.policy import policy_version_publish

        for version in queryset:
            try:
                version = policy_version_publish(
                    version=version, actor=request.user, now=timezone.now()
                )
            except BroadcastInvalid as exc:
                messages.error(
                    request, f"{version}: " + " / ".join(p.message for p in exc.problems)
                )
            else:
                messages.success(
                    request,
                    f"{version} を公開しました。お知らせの配信「{version.announcement.title}」"
                    "が承認待ちになっています。",
                )


class _ChoiceForm(forms.ModelForm):
    """Refuses a new area or age group when its list has no 集計番号 left (a form error, not
    a server error)."""

    def clean(self) -> dict[str, Any]:
        from .models.bits import BitPositioned, bits_free, no_free_bit_message

        cleaned = super().clean()
        model = type(self.instance)
        if self.instance.pk is None and issubclass(model, BitPositioned) and not bits_free(model):
            raise forms.ValidationError(no_free_bit_message(model))
        return cleaned


class _ChoiceAdmin(admin.ModelAdmin):
    """Areas, age groups and languages citizens choose from (issue 16): edited by 管理者,
    audited, never deleted here (uncheck 「選択肢に表示する」 to retire one; deleting is
    ``services.audiences.choice_delete``, which clears the option from the followers' 集計
    columns). Each area and age group shows its 集計番号 (fixed, 0–62)."""

    form = _ChoiceForm
    list_display: tuple[str, ...] = ("label", "code", "sort_order", "is_active", "bit")
    list_editable = ("sort_order", "is_active")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        bit = ("bit",) if hasattr(self.model, "BITS_FIELD") else ()
        return ("code", *bit) if obj is not None else bit

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        from .services import audiences
        from .services.errors import BroadcastInvalid

        try:
            audiences.choice_save(choice=obj, actor=request.user)
        except BroadcastInvalid as exc:
            self.message_user(request, " ".join(p.message for p in exc.problems), messages.ERROR)


@admin.register(models.Area)
class AreaAdmin(_ChoiceAdmin):
    list_display = ("label", "code", "sort_order", "is_active", "is_sample", "bit")


@admin.register(models.AgeGroup)
class AgeGroupAdmin(_ChoiceAdmin):
    pass


@admin.register(models.Language)
class LanguageAdmin(_ChoiceAdmin):
    list_display = ("label", "native_label", "code", "sort_order", "is_active")
