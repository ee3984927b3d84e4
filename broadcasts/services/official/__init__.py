"""Official information (JMA 防災情報XML, 防災メール) in, emergency drafts out (issue 15):
``ingest`` (one message → stored once → rule → draft), ``feeds`` (polling JMA's Atom feeds
and the IMAP mailbox), ``rules`` (admin-edited, audited)."""

from .feeds import FeedPollResult, imap_poll, official_feeds_poll
from .ingest import IngestResult, official_mail_ingest, official_message_ingest, system_author
from .rules import official_rule_delete, official_rule_save, official_rules_seed_defaults

__all__ = [
    "FeedPollResult",
    "IngestResult",
    "imap_poll",
    "official_feeds_poll",
    "official_mail_ingest",
    "official_message_ingest",
    "official_rule_delete",
    "official_rule_save",
    "official_rules_seed_defaults",
    "system_author",
]
