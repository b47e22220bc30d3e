"""A unit of a Thompson-allocated experiment keeps the arm it first got.

The shares change every epoch, so the hash that places a new unit would move a returning
one; its first arm is therefore stored in ``experiment_assignments`` (experiment, unit)
and read back from then on. A new unit is placed by its hash bucket into the current
epoch's share ranges (the same answer in every process for that epoch) and inserted; if
another process inserted it first, that row is read back and served, so all processes
agree. A bounded in-process LRU cache sits in front: a returning unit costs no query
once this process has seen it. Window, targeting, layer slice and holdout are the pure
hashes of :mod:`recsdk.experiments.assignment`: no database for units outside the
bandit.

If the database fails here the request is served outside the experiment (the default
pipeline, not counted) and the failure is logged, rather than failing the request.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from typing import TYPE_CHECKING

from cachetools import LRUCache
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from recsdk.experiments.allocation import EpochAllocator, place
from recsdk.experiments.assignment import Assignment, admitted, bucket, held_out
from recsdk.experiments.config import HOLDOUT, ExperimentSettings
from recsdk.log_throttle import ThrottledLog
from recsdk.storage import models

if TYPE_CHECKING:
    from recsdk.storage.store import Store

log = logging.getLogger(__name__)

#: Units whose arm one process remembers (about 200 bytes each).
DEFAULT_CACHE_UNITS = 100_000


class ThompsonAssigner:
    """Arms of the units of Thompson-allocated experiments: stored, sticky, cached."""

    def __init__(self, store: Store, cache_units: int = DEFAULT_CACHE_UNITS) -> None:
        if isinstance(cache_units, bool) or not isinstance(cache_units, int) or cache_units < 1:
            raise ValueError(f"cache_units must be a positive integer, got {cache_units!r}")
        self.store = store
        self.epochs = EpochAllocator(store)
        self._cache: LRUCache[tuple[str, str], str] = LRUCache(maxsize=cache_units)
        self._lock = threading.Lock()  # cachetools' caches are not thread-safe
        self._failures = ThrottledLog(log)
        #: queries made (reads and writes of assignments): the hot path's cost, for tests
        self.queries = 0

    def __call__(self, experiment: ExperimentSettings, unit_id: str | None, now: datetime,
                 is_returning: bool = False) -> Assignment | None:
        return self.assign(experiment, unit_id, now, is_returning)

    def assign(self, experiment: ExperimentSettings, unit_id: str | None, now: datetime,
               is_returning: bool = False) -> Assignment | None:
        """The unit's arm at ``now``, or None (not admitted; or the database failed)."""
        if experiment.allocation.method != "thompson":
            raise ValueError(f"experiment {experiment.name!r} has allocation.method "
                             f"{experiment.allocation.method!r}; ThompsonAssigner assigns "
                             "'thompson' experiments (fixed ones need no storage)")
        if not admitted(experiment, unit_id, now, is_returning):
            return None
        assert unit_id is not None
        if held_out(experiment, unit_id):
            return Assignment(experiment.name, HOLDOUT, holdout=True)
        key = (experiment.name, unit_id)
        with self._lock:
            variant = self._cache.get(key)
        if variant is None:
            try:
                variant = self._stored_or_placed(experiment, unit_id, now)
            except SQLAlchemyError as exc:
                self._failures.warning(
                    ("assign", experiment.name),
                    f"experiment {experiment.name!r}: could not read or store a unit's arm "
                    f"({type(exc).__name__}); serving it outside the experiment", exc)
                return None
            if variant is None:
                return None
            with self._lock:
                self._cache[key] = variant
        return Assignment(experiment.name, variant)

    def _stored_or_placed(self, experiment: ExperimentSettings, unit_id: str,
                          now: datetime) -> str | None:
        """The stored arm, or a new unit's placement (None: before the first epoch, which
        only a process whose clock is behind the one that recorded a start-less
        experiment can see)."""
        stored = self.stored(experiment.name, unit_id)
        if stored is not None:
            return stored
        if now < self.epochs.origin(experiment):
            return None
        shares = self.epochs.shares(experiment, now).shares
        variant = place(experiment, bucket(experiment.salt, unit_id), shares)
        table = models.ExperimentAssignment.__table__
        dialect = postgresql if self.store.dialect == "postgresql" else sqlite
        statement = dialect.insert(table).values(
            experiment=experiment.name, unit=unit_id, variant=variant, assigned_at=now,
        ).on_conflict_do_nothing(index_elements=["experiment", "unit"])
        self.queries += 1
        with self.store.engine.begin() as conn:
            inserted = conn.execute(statement).rowcount
        if inserted:
            return variant
        winner = self.stored(experiment.name, unit_id)  # another process was first
        assert winner is not None, "a conflicting row must be readable"
        return winner

    def stored(self, experiment: str, unit_id: str) -> str | None:
        """The unit's stored arm, if it has one (a query; :meth:`assign` caches it)."""
        table = models.ExperimentAssignment.__table__
        self.queries += 1
        with self.store.engine.connect() as conn:
            return conn.execute(select(table.c.variant).where(
                table.c.experiment == experiment, table.c.unit == unit_id)).scalar()

    def close(self) -> None:
        """Stop the epochs' background computation (RecSDK.close)."""
        self.epochs.close()

    def forget(self) -> None:
        """Empty this process's cache (tests; the stored arms stay)."""
        with self._lock:
            self._cache.clear()
