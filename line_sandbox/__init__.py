"""The LINE sandbox: a local stand-in for the LINE Messaging API (DESIGN §6).

Part of the product, not a test fake: without channel credentials the app talks to it, and every
test does. Start one with ``python manage.py line_sandbox`` or, in process,
``LineSandbox(port=0).start()``.
"""

from .server import DEFAULT_SECRET, DEFAULT_TOKEN, LineSandbox
from .state import Delivery, Fault, Follower, InboxItem, SandboxState, synthetic_user_id
from .webhook import follow_event, postback_event, sign, text_message_event, unfollow_event

__all__ = [
    "DEFAULT_SECRET",
    "DEFAULT_TOKEN",
    "Delivery",
    "Fault",
    "Follower",
    "InboxItem",
    "LineSandbox",
    "SandboxState",
    "follow_event",
    "postback_event",
    "sign",
    "synthetic_user_id",
    "text_message_event",
    "unfollow_event",
]
