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
from .moderation import (
    CitizenMessage,
    DraftRiskWordList,
    ModerationMeasure,
    ModerationRule,
    ModerationSettings,
    ProhibitedItem,
    ReplySuppression,
)
from .notifications import Alert, AlertRound, LineLink, LineLinkAttempt, LineLinkCode
from .official import OfficialFeed, OfficialMessage, OfficialRule
from .policy import PolicyVersion
from .richmenu import RichMenu
from .templates import AllowedDomain, MessageTemplate

__all__ = [
    "AgeGroup",
    "AggregationUnit",
    "Alert",
    "AlertRound",
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
    "CitizenMessage",
    "DailyStats",
    "Delivery",
    "Division",
    "DraftRiskWordList",
    "Follower",
    "FollowerAgeGroup",
    "FollowerArea",
    "FollowerLanguage",
    "Language",
    "LineFeatureRefusal",
    "LineLink",
    "LineLinkAttempt",
    "LineLinkCode",
    "MessageTemplate",
    "ModerationMeasure",
    "ModerationRule",
    "ModerationSettings",
    "OfficialFeed",
    "OfficialMessage",
    "OfficialRule",
    "PolicyVersion",
    "ProhibitedItem",
    "PublicNotice",
    "ReplySuppression",
    "RichMenu",
    "StandardReply",
    "User",
    "WebhookEvent",
]
