"""A send run's lease: its owner's name and the thread that keeps it."""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable

from django.conf import settings

from ...models import Broadcast, Delivery

logger = logging.getLogger(__name__)


S = Broadcast.Status
D = Delivery.Status


def _lease_seconds() -> dt.timedelta:
    return dt.timedelta(seconds=settings.SEND_LEASE_SECONDS)


def lease_owner_new() -> str:
    """A name for one send run: host, process and a random part. Made when the run starts,
    never at import: prefork pool processes share their parent's imports, and two runs in one
    process must not take each other's lease for their own (STYLE.md §14)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


class LeaseKeeper(threading.Thread):
    """Renews a send's lease by time while its sender lives (every third of the lease), not
    only when a chunk is accepted: a sender waiting on a slow LINE keeps its send, and the
    dispatcher resumes a send only when its sender is really gone. If the lease has moved to
    another run meanwhile, ``lost`` is set and the sender stops before its next request."""

    def __init__(self, broadcast_id: int, owner: str, now_fn: Callable[[], dt.datetime]) -> None:
        super().__init__(name=f"lease-{broadcast_id}", daemon=True)
        self.broadcast_id = broadcast_id
        self.owner = owner
        self.now_fn = now_fn
        self.lost = threading.Event()
        self._stop_event = threading.Event()
        self.interval = max(settings.SEND_LEASE_SECONDS / 3, 0.2)

    def run(self) -> None:
        from django.db import connection

        try:
            while not self._stop_event.wait(self.interval):
                try:
                    renewed = Broadcast.objects.filter(
                        pk=self.broadcast_id, status=S.SENDING, lease_owner=self.owner
                    ).update(lease_expires_at=self.now_fn() + _lease_seconds())
                except Exception:  # a busy database: try again at the next beat
                    logger.warning("lease renewal of broadcast %s failed", self.broadcast_id)
                    continue
                if not renewed:
                    logger.warning(
                        "broadcast %s: lease lost by %s; stopping", self.broadcast_id, self.owner
                    )
                    self.lost.set()
                    return
        finally:
            connection.close()

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=5)
