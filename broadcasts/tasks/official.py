"""Official information (issue 15): beat polls JMA's feeds and the IMAP mailbox every minute.
A failure is recorded on the feed's row (運用状況) and logged, never raised."""

from __future__ import annotations

import logging

from celery import shared_task
from django.utils import timezone

from ..services.official import imap_poll, official_feeds_poll

logger = logging.getLogger("broadcasts.official")


@shared_task(name="broadcasts.tasks.poll_official_feeds", ignore_result=True)
def poll_official_feeds() -> dict[str, int]:
    try:
        result = official_feeds_poll(now_fn=timezone.now)
        mails = imap_poll(now_fn=timezone.now)
    except Exception:  # a worker never dies of official information: logged, next beat retries
        logger.exception("防災情報の取得で予期しないエラーが起きました")
        return {"error": 1}
    return {
        "feeds": result.feeds,
        "new_entries": result.new_entries,
        "created": len(result.created),
        "failures": len(result.failures),
        "mails": mails,
    }
