"""Sending, effectively once (DESIGN.md §5).

* The database is the schedule: the dispatcher claims due rows with
  ``select_for_update(skip_locked=True)``; no long Celery ETAs anywhere.
* Before the first LINE call every request is a committed ``Delivery`` row with its own UUID
  retry key; every attempt reuses it, and LINE's 409 for a known key counts as accepted.
* A sending worker holds a lease it renews as it goes. A worker that dies leaves the lease
  to expire; the dispatcher then hands the send to another worker, which sends only the
  deliveries not yet accepted (a chunk accepted but not recorded gets 409 → accepted).
"""

from .dispatch import DispatchResult, broadcast_claim_now, broadcasts_dispatch_due
from .finish import SendOutcome
from .lease import LeaseKeeper, lease_owner_new
from .send import broadcast_send

__all__ = [
    "DispatchResult",
    "LeaseKeeper",
    "SendOutcome",
    "broadcast_claim_now",
    "broadcast_send",
    "broadcasts_dispatch_due",
    "lease_owner_new",
]
