"""Every write and every state change (HackSoft styleguide: services).

Import from here: ``from broadcasts.services import broadcast_approve``."""

from .audit import audit_record
from .calendar import calendar_override_delete, calendar_override_save
from .emergency import broadcast_create_follow_up, follow_up_text
from .errors import (
    BroadcastInvalid,
    BroadcastPermissionDenied,
    InvalidTransition,
    SecondFactorRequired,
    StaleApproval,
    TooManyTestSends,
)
from .lifecycle import (
    TRANSITIONS,
    EmergencyConfirmation,
    broadcast_approve,
    broadcast_cancel,
    broadcast_create,
    broadcast_reject,
    broadcast_submit,
    broadcast_update,
    broadcast_withdraw,
    compute_hash,
)
from .message_templates import message_template_create_from_broadcast
from .official import (
    official_feeds_poll,
    official_mail_ingest,
    official_message_ingest,
    official_rule_delete,
    official_rule_save,
)
from .sending import (
    DispatchResult,
    SendOutcome,
    broadcast_claim_now,
    broadcast_send,
    broadcasts_dispatch_due,
    lease_owner_new,
)
from .testsend import TestSendResult, broadcast_send_test

__all__ = [
    "TRANSITIONS",
    "BroadcastInvalid",
    "BroadcastPermissionDenied",
    "DispatchResult",
    "EmergencyConfirmation",
    "InvalidTransition",
    "SecondFactorRequired",
    "SendOutcome",
    "StaleApproval",
    "TestSendResult",
    "TooManyTestSends",
    "audit_record",
    "broadcast_approve",
    "broadcast_cancel",
    "broadcast_claim_now",
    "broadcast_create",
    "broadcast_create_follow_up",
    "broadcast_reject",
    "broadcast_send",
    "broadcast_send_test",
    "broadcast_submit",
    "broadcast_update",
    "broadcast_withdraw",
    "broadcasts_dispatch_due",
    "calendar_override_delete",
    "calendar_override_save",
    "compute_hash",
    "follow_up_text",
    "lease_owner_new",
    "message_template_create_from_broadcast",
    "official_feeds_poll",
    "official_mail_ingest",
    "official_message_ingest",
    "official_rule_delete",
    "official_rule_save",
]
