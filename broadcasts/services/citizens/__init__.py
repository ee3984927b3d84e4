"""The citizen side: webhook events (``events.py``), followers and 受信設定 (``followers.py``),
automatic responses (``responses.py``) and public notices (``notices.py``).

Policy 5(2): citizens get automatic responses only. Policy 10: we keep a follower's LINE user
ID, follow/unfollow times and chosen categories — nothing else — and a message's text in
the webhook event only until the event has been processed; the moderation inbox keeps
messages for the retention the city sets (policy 6, ``services/moderation.py``).

New followers receive every category (the choice documented in the greeting): before 受信設定
existed every friend received everything, and nobody should miss 防災・防犯 or 緊急情報 because
they did not open a menu. Each citizen can narrow it down at any time."""

from .events import (
    webhook_event_process,
    webhook_events_pending,
    webhook_events_process,
    webhook_events_process_new,
    webhook_events_purge,
    webhook_events_store,
    webhook_events_wake_all,
)
from .followers import (
    follower_ensure,
    follower_follow,
    follower_unfollow,
    followers_follow,
    postback_handle,
    subscription_menu_messages,
    subscription_set,
    subscription_set_all,
)
from .notices import public_notice_delete, public_notice_save
from .responses import (
    auto_reply_messages,
    auto_reply_rule_delete,
    auto_reply_rule_save,
    auto_reply_rule_select,
    normalize,
    reply_messages_check,
    standard_reply_messages,
    standard_reply_save,
)

__all__ = [
    "auto_reply_messages",
    "auto_reply_rule_delete",
    "auto_reply_rule_save",
    "auto_reply_rule_select",
    "follower_ensure",
    "follower_follow",
    "follower_unfollow",
    "followers_follow",
    "normalize",
    "postback_handle",
    "public_notice_delete",
    "public_notice_save",
    "reply_messages_check",
    "standard_reply_messages",
    "standard_reply_save",
    "subscription_menu_messages",
    "subscription_set",
    "subscription_set_all",
    "webhook_event_process",
    "webhook_events_pending",
    "webhook_events_process",
    "webhook_events_process_new",
    "webhook_events_purge",
    "webhook_events_store",
    "webhook_events_wake_all",
]
