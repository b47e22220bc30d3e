"""Housekeeping the periodic worker and ``recsdk prune`` run: bounding stored logs.

Every served list writes a request row and one impression row per item; nothing else
removes them, so without pruning the database grows with traffic for ever. Lists
older than ``[retention] requests_days`` are deleted, except those that received
feedback (see :meth:`recsdk.storage.store.Store.prune_requests`).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from recsdk.config import Settings
from recsdk.storage.partitions import Dropped
from recsdk.storage.store import Store

log = logging.getLogger(__name__)


def retention_cutoff(settings: Settings, now: datetime | None = None,
                     older_than_days: float | None = None) -> datetime:
    """The creation time before which served lists go."""
    days = settings.retention["requests_days"] if older_than_days is None else older_than_days
    if days < 0:
        raise ValueError(f"the retention period cannot be negative, got {days} days")
    return (now or datetime.now(UTC)) - timedelta(days=days)


def prune(store: Store, settings: Settings, *, now: datetime | None = None,
          older_than_days: float | None = None, dry_run: bool = False) -> dict[str, int]:
    """Delete (or, with ``dry_run``, count) served lists past the retention period.

    Returns how many ``requests`` and ``impressions`` rows went (or would go).
    """
    before = retention_cutoff(settings, now, older_than_days)
    if dry_run:
        return store.count_prunable_requests(before)
    removed = store.prune_requests(before, settings.retention["prune_batch"])
    log.info("pruned %d served lists and %d impressions created before %s",
             removed["requests"], removed["impressions"], before.isoformat())
    return removed


def prune_events(store: Store, *, older_than_days: float, now: datetime | None = None,
                 dry_run: bool = False) -> tuple[datetime, list[Dropped]]:
    """Drop (or, with ``dry_run``, list) the months of events entirely older than
    ``older_than_days``: PostgreSQL's monthly partitions, detached then dropped.

    Returns the cut-off and the partitions with their event counts. Not run by the
    periodic worker: deleting behaviour history is an operator's decision.
    """
    if older_than_days < 0:
        raise ValueError(f"the retention period cannot be negative, got {older_than_days} "
                         "days")
    before = (now or datetime.now(UTC)) - timedelta(days=older_than_days)
    dropped = store.drop_event_months(before, dry_run=dry_run)
    if not dry_run:
        for part in dropped:
            log.info("dropped events partition %s (%s to %s, %d events)", part.name,
                     part.start.date(), part.end.date(), part.events)
    return before, dropped
