"""The append-only audit log."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .broadcast import Broadcast

# What each audit verb means, in Japanese, for the history screen and its CSV (issue 13 item 7:
# staff never read ``login`` or ``send_started``). A test parses every ``audit_record(verb=…)``
# in the product and fails for a verb missing here.
VERB_LABELS: dict[str, str] = {
    # a broadcast's life (services/lifecycle.py TRANSITIONS, plus create and edit)
    "create": "作成",
    "edit": "編集",
    "submit": "承認申請",
    "withdraw": "申請の取り下げ",
    "approve": "承認",
    "reject": "差し戻し",
    "reopen": "再審査（承認後の変更）",
    "cancel": "取消",
    "claim": "配信処理の開始",
    "hold": "保留",
    "complete": "配信完了",
    "fail": "失敗",
    "needs_attention": "要対応",
    "resume": "再開",
    # sending
    "held": "保留（配信時間・上限）",
    "send_started": "配信開始",
    "send_resumed": "配信の再開（別の処理が引き継ぎ）",
    "send_retry_later": "一時的なエラー（あとで再試行）",
    "test_send": "テスト送信",
    "follow_up_created": "訂正・取消の作成",
    # accounts and security
    "login": "ログイン",
    "logout": "ログアウト",
    "login_failed": "ログイン失敗",
    "login_locked_out": "ログインの一時停止（失敗の繰り返し）",
    "login_unlocked": "ログイン停止の解除",
    "password_changed": "パスワード変更",
    "password_set_by_admin": "パスワードの再設定（管理者）",
    "permission_changed": "権限変更",
    "user_created": "職員アカウントの作成",
    "user_flags_changed": "アカウント設定の変更",
    "second_factor_enrolled": "二要素認証の登録",
    "second_factor_verified": "二要素認証の確認",
    "second_factor_failed": "二要素認証の失敗",
    "second_factor_reset": "二要素認証のリセット（管理者）",
    # administration
    "calendar_override_saved": "開庁日の例外の登録",
    "calendar_override_deleted": "開庁日の例外の削除",
    "auto_reply_rule_created": "自動応答ルールの作成",
    "auto_reply_rule_changed": "自動応答ルールの変更",
    "auto_reply_rule_deleted": "自動応答ルールの削除",
    "standard_reply_changed": "あいさつ・既定の応答の変更",
    "public_notice_saved": "公開ページのお知らせの保存",
    "public_notice_deleted": "公開ページのお知らせの削除",
    "rich_menu_created": "リッチメニューの作成",
    "rich_menu_changed": "リッチメニューの変更",
    "rich_menu_image_set": "リッチメニュー画像の設定",
    "rich_menu_published": "リッチメニューの公開",
    "rich_menu_switched": "リッチメニューの切り替え",
    # staff alerts (issue 13)
    "approval_alerts_sent": "承認依頼の通知",
    "approval_alert_opened": "承認依頼の通知を開いた",
    "approval_alerts_escalated": "承認依頼の再通知（未対応）",
    "line_link_code_issued": "通知用アカウントの連携コードの発行",
    "line_linked": "通知用アカウントの連携",
    "line_link_refused": "通知用アカウントの連携コードの拒否",
    "line_unlinked": "通知用アカウントの連携解除",
    # official information (issue 15)
    "official_rule_created": "防災情報の規則の作成",
    "official_rule_changed": "防災情報の規則の変更",
    "official_rule_deleted": "防災情報の規則の削除",
    "official_submit_failed": "防災情報からの下書きの申請失敗",
    # audiences (issue 16)
    "audience_choice_saved": "地区・年齢区分・言語の選択肢の変更",
    "audience_choice_deleted": "地区・年齢区分の選択肢の削除",
    "line_feature_refused": "集計単位（開封・クリックの集計）の利用を拒否された",
    # moderation and the policy (issue 17)
    "citizen_message_auto_flagged": "市民メッセージの自動フラグ",
    "citizen_message_flagged": "市民メッセージへのフラグ",
    "citizen_message_unflagged": "市民メッセージのフラグ解除",
    "citizen_message_noted": "市民メッセージへのメモ",
    "reply_suppressed": "自動応答の停止",
    "reply_suppression_lifted": "自動応答の停止の解除",
    "moderation_measure_recorded": "措置の記録",
    "moderation_rule_created": "自動フラグのルールの作成",
    "moderation_rule_changed": "自動フラグのルールの変更",
    "moderation_rule_deleted": "自動フラグのルールの削除",
    "draft_word_list_created": "配信前チェックの語句リストの作成",
    "draft_word_list_changed": "配信前チェックの語句リストの変更",
    "draft_word_list_deleted": "配信前チェックの語句リストの削除",
    "moderation_settings_changed": "メッセージ保存の設定の変更",
    "data_purged": "保存期間を過ぎたデータの削除",
    "policy_version_created": "運用ポリシーの版の作成",
    "policy_version_changed": "運用ポリシーの版の変更",
    "policy_version_deleted": "運用ポリシーの版の削除",
    "policy_version_published": "運用ポリシーの版の公開",
}


def verb_label(verb: str) -> str:
    """The Japanese label of an audit verb (the verb itself only for one nobody labelled)."""
    return VERB_LABELS.get(verb, verb)


class BroadcastEvent(models.Model):
    """Append-only audit log: who did what, when, with the state before and after.

    The app never updates or deletes these rows (``save`` refuses updates). The database
    refuses them too, whatever path writes: triggers reject UPDATE and DELETE on SQLite and
    PostgreSQL, and TRUNCATE on PostgreSQL (migrations 0003 and 0011)."""

    broadcast = models.ForeignKey(
        Broadcast, null=True, blank=True, on_delete=models.PROTECT, related_name="events"
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT
    )
    verb = models.CharField(_("操作"), max_length=40, db_index=True)
    from_status = models.CharField(_("変更前"), max_length=20, blank=True)
    to_status = models.CharField(_("変更後"), max_length=20, blank=True)
    comment = models.TextField(_("コメント"), blank=True)
    data = models.JSONField(_("詳細"), default=dict, blank=True)
    created_at = models.DateTimeField(_("日時"), default=timezone.now, db_index=True)

    class Meta:
        verbose_name = _("監査ログ")
        verbose_name_plural = _("監査ログ")
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.verb}"

    def save(self, *args, **kwargs) -> None:
        if self.pk is not None and not self._state.adding:
            raise PermissionError("監査ログは変更できません")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise PermissionError("監査ログは削除できません")
