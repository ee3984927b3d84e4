"""Staff alerts (issue 13): approvers are told, on their phones, that a broadcast waits.

* **Linking LINE.** A staff member asks for a one-time code on 「LINE 通知の設定」 and sends it
  (「職員連携 ABCD-EFGH」) to the official account from their own LINE. Webhook processing hands
  every text message to ``line_link_message`` first: a code links the account (audited) and is
  answered; any other text goes on to the citizens' automatic responses. Codes expire, are
  single use and stored only as a digest; wrong guesses are throttled per LINE account.
* **Emergencies and drills** alert every 承認者 who may approve (not its writers) at once, by
  LINE push and by e-mail. The rows are made in the submission's transaction; the send task is
  enqueued after commit on the ``emergency`` queue, and a beat task (``approval_alerts_tick``)
  is the backstop and escalates: a round nobody alerted has opened within
  ``ALERT_ESCALATION_MINUTES`` alerts every 承認者 and 管理者 once.
* **Ordinary submissions** queue e-mail rows for reviewers that ``review_digests_send`` (beat)
  sends as one digest per reviewer. Never LINE.

Effectively once, as the sender does it: one row per (round, person, channel, level) by a
unique constraint; a worker claims rows in a committed transaction before it sends (a second
worker skips them); LINE pushes carry the row's retry key, so a push repeated after a worker
died is answered 409 by LINE, not delivered twice. (An e-mail whose worker died between the
mail server's acceptance and the commit is sent again after ``STALE_CLAIM``: mail has no
retry key.)

Time is an input: every function takes ``now`` (or ``now_fn``) from its caller."""

from .approvals import (
    DELIVER_APPROVAL_ALERTS,
    DRILL_MARKER,
    TickResult,
    alert_message,
    approval_alert_opened,
    approval_alerts_deliver,
    approval_alerts_escalate,
    approval_alerts_open,
    approval_alerts_tick,
)
from .delivery import MAX_ATTEMPTS, STALE_CLAIM, AlertMessage, alert_url, review_url
from .digest import digest_message, review_digests_send
from .linking import (
    CODE_ALPHABET,
    EXPIRED_CODE_REPLY,
    LINK_ATTEMPT_LIMIT,
    LINK_ATTEMPT_WINDOW,
    LINK_PREFIX,
    LINKED_REPLY,
    TAKEN_REPLY,
    THROTTLED_REPLY,
    USED_CODE_REPLY,
    WRONG_CODE_REPLY,
    format_code,
    line_link_attempts_purge,
    line_link_code_issue,
    line_link_message,
    line_link_remove,
    normalise_code,
)

__all__ = [
    "CODE_ALPHABET",
    "DELIVER_APPROVAL_ALERTS",
    "DRILL_MARKER",
    "EXPIRED_CODE_REPLY",
    "LINKED_REPLY",
    "LINK_ATTEMPT_LIMIT",
    "LINK_ATTEMPT_WINDOW",
    "LINK_PREFIX",
    "MAX_ATTEMPTS",
    "STALE_CLAIM",
    "TAKEN_REPLY",
    "THROTTLED_REPLY",
    "USED_CODE_REPLY",
    "WRONG_CODE_REPLY",
    "AlertMessage",
    "TickResult",
    "alert_message",
    "alert_url",
    "approval_alert_opened",
    "approval_alerts_deliver",
    "approval_alerts_escalate",
    "approval_alerts_open",
    "approval_alerts_tick",
    "digest_message",
    "format_code",
    "line_link_attempts_purge",
    "line_link_code_issue",
    "line_link_message",
    "line_link_remove",
    "normalise_code",
    "review_digests_send",
    "review_url",
]
