"""The data model, one module per domain. State changes happen only in ``services``; see
DESIGN.md §3.

Every model is re-exported here: import models as ``from broadcasts.models import X``."""

from .accounts import Division, User
from .audiences import (
    AgeGroup,
    AggregationUnit,
    Area,
    BroadcastAudience,
    BroadcastVariant,
    FollowerAgeGroup,
    FollowerArea,
    FollowerLanguage,
    Language,
    LineFeatureRefusal,
)
from .audit import BroadcastEvent
from .broadcast import Broadcast, BroadcastContributor, Category
from .calendar import CalendarOverride
from .citizens import AutoReplyRule, Follower, PublicNotice, StandardReply, WebhookEvent
from .delivery import Delivery
from .insight import BroadcastStats, DailyStats
from .richmenu import RichMenu
from .templates import AllowedDomain, MessageTemplate

__all__ = [
    "AgeGroup",
    "AggregationUnit",
    "AllowedDomain",
    "Area",
    "AutoReplyRule",
    "Broadcast",
    "BroadcastAudience",
    "BroadcastContributor",
    "BroadcastEvent",
    "BroadcastStats",
    "BroadcastVariant",
    "CalendarOverride",
    "Category",
    "DailyStats",
    "Delivery",
    "Division",
    "Follower",
    "FollowerAgeGroup",
    "FollowerArea",
    "FollowerLanguage",
    "Language",
    "LineFeatureRefusal",
    "MessageTemplate",
    "PublicNotice",
    "RichMenu",
    "StandardReply",
    "User",
    "WebhookEvent",
]
