"""A pool process's first send, rehearsed as the process starts, without writing anything.

Measured in a freshly forked pool process (issue 18, window opening): its first send took
~100 ms of CPU, the next ones ~25 ms. The difference is paid once per process and per
database connection: Django's lazily built caches (fields, lookups, joins), the locked read's
SQL compiled once per process (``send._locked_for_send``), and PostgreSQL's new backend
loading the catalog entries of every table and index a send touches. At the window's opening
four pool processes paid it at once, with fifty held sends queued behind them; an emergency
sent by a fresh process paid it before its request.

So each pool process runs the same statements once at start, on a broadcast id no row has:
the locked read and the reads of the preparation, the reads of the sending loop, and the
UPDATEs of the lease, the progress and the completion, which change no row (``WHERE id =``
an id that does not exist). No INSERT: nothing is written, no id sequence moves."""

from __future__ import annotations

import datetime as dt

from django.db import connection, transaction
from django.db.models import F

from ... import selectors
from ...models import Broadcast, Delivery
from ...schedule import jst_date
from ...selectors import audiences as audience_selectors
from ..lifecycle import transition_if
from .build import _resume_point
from .send import _locked_for_send

NO_SUCH_BROADCAST = 0  # ids start at 1


def sender_warm_up(*, now: dt.datetime) -> None:
    """Run a send's statements once for nothing (see the module's docstring). The caller
    treats a failure as harmless: the first send then pays for it, as before."""
    ghost = Broadcast(
        pk=NO_SUCH_BROADCAST,
        audience=Broadcast.Audience.SUBSCRIBERS,
        status=Broadcast.Status.SENDING,
    )
    with transaction.atomic():
        if _locked_for_send(NO_SUCH_BROADCAST) is not None:  # pragma: no cover - no such row
            raise RuntimeError("a broadcast has the warm-up's id")
        selectors.calendar_load(now=now)
        spec = audience_selectors.audience_spec(ghost)
        _resume_point(ghost)
        recipients = audience_selectors.followers_for_spec(spec, after=0).order_by("id")
        recipients.values("id", "line_user_id").query.get_compiler(connection=connection).as_sql()
        audience_selectors.aggregation_unit_outlook(
            NO_SUCH_BROADCAST, jst_date(now).strftime("%Y%m")
        )
        Broadcast.objects.filter(pk=NO_SUCH_BROADCAST).update(
            lease_owner="", lease_expires_at=now, updated_at=now
        )
        list(
            Delivery.objects.filter(
                broadcast_id=NO_SUCH_BROADCAST, status=Delivery.Status.PENDING, seq__gt=0
            ).order_by("seq")[:1]
        )
        Broadcast.objects.filter(pk=NO_SUCH_BROADCAST).update(
            deliveries_accepted=F("deliveries_accepted") + 1, lease_expires_at=now
        )
        transition_if(
            ghost,
            "complete",
            now=now,
            where={"lease_owner": "", "deliveries_total": F("deliveries_accepted") + 1},
            values={"deliveries_accepted": F("deliveries_accepted") + 1, "sent_at": now},
        )
