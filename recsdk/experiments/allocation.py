"""Thompson-sampling traffic shares, one set per epoch, computed once and stored.

Why epochs and a table: the shares must be the same in every serving process (units are
placed by hash into the shares' ranges) and must not move with data that arrives late.
So time from the experiment's start (or, without one, from when it was first recorded)
is cut into epochs of ``allocation.every_hours``; the shares of an epoch come from the
report cut at the epoch's start, with a seed derived from ``allocation.seed`` and the
epoch's index, and are stored in ``experiment_allocations`` keyed by (experiment, epoch
start). The first process to need an epoch computes it; a race is settled by the key
(insert, on conflict read the winner's row back). Until every variant has
``warmup_units`` units the declared shares are used, and stored as such. The holdout is
outside the bandit: it keeps its share by its own hash (docs/experiments.md).

Computing an epoch means building the report (every exposure and reaction so far): about
a second for 28,000 exposures, far more for a large experiment. So that no request waits
for it, an epoch's data are cut ``LEAD`` of an epoch before it starts (1 hour for daily
epochs), and a process placing new units in that last stretch of the previous epoch
computes the next one in a background thread. A request computes it only when nobody
did in time (no new unit in that hour, or the computation still running).
"""

from __future__ import annotations

import bisect
import hashlib
import logging
import threading
from collections.abc import Mapping
from concurrent import futures
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

from recsdk.errors import ConfigurationError
from recsdk.experiments.config import ExperimentSettings
from recsdk.experiments.outcomes import aware
from recsdk.log_throttle import ThrottledLog
from recsdk.storage import models

log = logging.getLogger(__name__)

#: The report's unit counts behind each metric a Thompson allocation may optimise.
METRIC_COUNTS = {"conversion_rate": "units_converted", "click_rate": "units_clicked",
                 "add_to_cart_rate": "units_added_to_cart"}
#: Posterior draws per epoch (thompson_shares' default: P(best) to about +-0.005).
DRAWS = 10_000
#: An epoch's data are cut this fraction of an epoch before it starts; the next epoch is
#: computed in the background from then on.
LEAD = 1 / 24


@dataclass(frozen=True)
class EpochShares:
    """The shares new units of one epoch are placed by, and what they came from."""

    experiment: str
    start: datetime
    shares: Mapping[str, float]
    #: posterior P(variant is best); None: warm-up (the declared shares)
    prob_best: Mapping[str, float] | None
    #: {variant: (successes, trials)} at the epoch's start
    counts: Mapping[str, tuple[int, int]]

    @property
    def warmup(self) -> bool:
        return self.prob_best is None


def epoch_of(origin: datetime, every_hours: float, now: datetime) -> tuple[int, datetime]:
    """The index and start of the epoch ``now`` falls in (epochs of ``every_hours``
    from ``origin``); integer arithmetic on timedeltas, so every process agrees."""
    if not every_hours > 0:
        raise ValueError(f"every_hours must be > 0, got {every_hours!r}")
    if now < origin:
        raise ValueError(f"now ({now.isoformat()}) is before the first epoch "
                         f"({origin.isoformat()})")
    width = timedelta(hours=every_hours)
    index = (now - origin) // width
    return index, origin + index * width


def data_cut(start: datetime, every_hours: float) -> datetime:
    """Up to when the data behind the epoch starting at ``start`` reach (see ``LEAD``)."""
    return start - timedelta(hours=every_hours) * LEAD


def epoch_seed(seed: int, epoch: int) -> int:
    """The sampler's seed for ``epoch``: a fixed function of (seed, epoch), so a recomputed
    epoch gives the same shares and epochs do not share draws."""
    digest = hashlib.blake2b(f"thompson:{seed}:{epoch}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def compute_epoch(store: Any, experiment: ExperimentSettings, epoch: int, start: datetime
                  ) -> EpochShares:
    """The shares of ``epoch`` (starting at ``start``) from the report cut at
    :func:`data_cut`: successes = units with the allocation's metric, trials = units, per
    variant."""
    # here, not at the top: the report reads our table, and scipy/statsmodels cost
    # a serving process's startup a second
    from recsdk.experiments.report import experiment_report

    allocation = experiment.allocation
    if allocation.method != "thompson":
        raise ValueError(f"experiment {experiment.name!r} has allocation.method "
                         f"{allocation.method!r}; epochs are for 'thompson'")
    report = experiment_report(store, experiment, now=data_cut(start, allocation.every_hours))
    counts: dict[str, tuple[int, int]] = {}
    for name in experiment.variant_names:
        arm = report.arm(name) if report.has_exposures else None
        counts[name] = ((getattr(arm, METRIC_COUNTS[allocation.metric]), arm.units)
                        if arm is not None else (0, 0))
    return shares_from_counts(experiment, counts, epoch, start)


def shares_from_counts(experiment: ExperimentSettings,
                       counts: Mapping[str, tuple[int, int]], epoch: int, start: datetime
                       ) -> EpochShares:
    """The shares of ``epoch`` from each variant's (successes, trials) at its start: the
    declared shares until every variant has ``warmup_units`` trials, then Thompson
    sampling (seeded by :func:`epoch_seed`, floored at ``min_share``). Pure: the
    benchmark simulates with it."""
    from recsdk.experiments.sequential import thompson_shares  # see compute_epoch

    allocation = experiment.allocation
    names = experiment.variant_names
    missing = [v for v in names if v not in counts]
    if missing:
        raise ValueError(f"counts of experiment {experiment.name!r} miss {missing}")
    counts = {v: (int(counts[v][0]), int(counts[v][1])) for v in names}
    if min(n for _, n in counts.values()) < allocation.warmup_units:
        return EpochShares(experiment.name, start, {v.name: v.share for v in experiment.variants},
                           None, counts)
    drawn = thompson_shares([counts[v][0] for v in names], [counts[v][1] for v in names],
                            variants=names, min_share=allocation.min_share, draws=DRAWS,
                            seed=epoch_seed(allocation.seed, epoch))
    return EpochShares(experiment.name, start, drawn.as_mapping(),
                       dict(zip(names, drawn.prob_best, strict=True)), counts)


def _row(experiment: str, row: Any) -> EpochShares:
    return EpochShares(experiment, aware(row.epoch_start), dict(row.shares),
                       None if row.prob_best is None else dict(row.prob_best),
                       {k: (int(s), int(n)) for k, (s, n) in row.counts.items()})


class EpochAllocator:
    """The current epoch's shares of each Thompson experiment, read from the table or
    computed once there; kept in memory for the rest of the epoch (no query per request).
    The next epoch is computed in a background thread during the last ``LEAD`` of this
    one; :meth:`close` stops that thread.
    """

    def __init__(self, store: Any) -> None:
        self.store = store
        self._current: dict[str, EpochShares] = {}
        self._origins: dict[str, datetime] = {}
        self._lock = threading.Lock()
        #: next epochs computed ahead, by (experiment, start), and those being computed
        self._ready: dict[tuple[str, datetime], EpochShares] = {}
        self._pending: dict[tuple[str, datetime], Future[None]] = {}
        self._ahead_lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self._closed = False
        self._failures = ThrottledLog(log)

    def origin(self, experiment: ExperimentSettings) -> datetime:
        """Where epoch 0 starts: ``start``, or when the experiment was first recorded
        (the same instant in every process; ``RecSDK`` records it at startup)."""
        if experiment.start is not None:
            return experiment.start
        known = self._origins.get(experiment.name)
        if known is not None:
            return known
        table = models.ExperimentRecord.__table__
        with self.store.engine.connect() as conn:
            first = conn.execute(select(table.c.first_seen_at)
                                 .where(table.c.name == experiment.name)).scalar()
        if first is None:
            raise ConfigurationError(
                f"experiments.{experiment.name}: allocation 'thompson' without a start counts "
                "its epochs from when the experiment was first recorded, and it has no "
                "record yet; give it a start, or open the database with RecSDK first (it "
                "records every configured experiment)")
        self._origins[experiment.name] = aware(first)
        return self._origins[experiment.name]

    def shares(self, experiment: ExperimentSettings, now: datetime) -> EpochShares:
        """The shares of the epoch ``now`` falls in (and, in its last ``LEAD``, the next
        epoch's computation started in the background)."""
        every = experiment.allocation.every_hours
        index, start = epoch_of(self.origin(experiment), every, now)
        current = self._current.get(experiment.name)
        if current is None or current.start != start:
            with self._lock:  # one computation per process; other threads wait for it
                current = self._current.get(experiment.name)
                if current is None or current.start != start:
                    with self._ahead_lock:
                        ahead = self._ready.pop((experiment.name, start), None)
                    current = (ahead or self.stored(experiment.name, start)
                               or self._store(compute_epoch(self.store, experiment, index,
                                                            start), now))
                    self._current[experiment.name] = current
        following = start + timedelta(hours=every)
        if now >= data_cut(following, every) and (experiment.stop is None
                                                  or following < experiment.stop):
            self._ahead(experiment, index + 1, following, now)
        return current

    def _ahead(self, experiment: ExperimentSettings, epoch: int, start: datetime,
               now: datetime) -> None:
        """Compute epoch ``epoch`` in the background unless done or under way."""
        key = (experiment.name, start)
        if key in self._ready or key in self._pending or self._closed:
            return
        with self._ahead_lock:
            if key in self._ready or key in self._pending or self._closed:
                return
            if self._executor is None:
                self._executor = ThreadPoolExecutor(1, thread_name_prefix="recsdk-epochs")
            self._pending[key] = self._executor.submit(self._compute_ahead, experiment,
                                                       epoch, start, now)

    def _compute_ahead(self, experiment: ExperimentSettings, epoch: int, start: datetime,
                       now: datetime) -> None:
        key = (experiment.name, start)
        try:
            got = (self.stored(experiment.name, start)
                   or self._store(compute_epoch(self.store, experiment, epoch, start), now))
        except Exception as exc:  # the request path computes it when the epoch starts
            self._failures.warning(("ahead", experiment.name),
                                   f"experiment {experiment.name!r}: computing the next "
                                   f"epoch's shares in the background failed "
                                   f"({type(exc).__name__}: {exc}); the first request of "
                                   "the epoch will", exc)
            got = None
        with self._ahead_lock:
            self._pending.pop(key, None)
            if got is not None and not self._closed:
                self._ready[key] = got

    def wait(self, timeout_s: float | None = None) -> None:
        """Wait for the epochs being computed in the background (tests, shutdown)."""
        with self._ahead_lock:
            pending = list(self._pending.values())
        futures.wait(pending, timeout=timeout_s)

    def close(self) -> None:
        """Stop computing ahead (a computation under way finishes on its own)."""
        with self._ahead_lock:
            self._closed = True
            executor, self._executor = self._executor, None
            self._ready.clear()
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)

    def stored(self, experiment: str, start: datetime) -> EpochShares | None:
        """The stored shares of the epoch starting at ``start``, if computed yet."""
        table = models.ExperimentAllocation.__table__
        with self.store.engine.connect() as conn:
            row = conn.execute(select(table).where(table.c.experiment == experiment,
                                                   table.c.epoch_start == start)).first()
        return None if row is None else _row(experiment, row)

    def _store(self, shares: EpochShares, now: datetime) -> EpochShares:
        """Insert ``shares`` unless another process stored that epoch first; return the
        row that is stored (ours or theirs)."""
        table = models.ExperimentAllocation.__table__
        dialect = postgresql if self.store.dialect == "postgresql" else sqlite
        statement = dialect.insert(table).values(
            experiment=shares.experiment, epoch_start=shares.start, shares=dict(shares.shares),
            prob_best=None if shares.prob_best is None else dict(shares.prob_best),
            counts={k: list(v) for k, v in shares.counts.items()}, computed_at=now,
        ).on_conflict_do_nothing(index_elements=["experiment", "epoch_start"])
        with self.store.engine.begin() as conn:
            conn.execute(statement)
        stored = self.stored(shares.experiment, shares.start)
        assert stored is not None, "an inserted or conflicting row must be readable"
        return stored


@dataclass(frozen=True)
class AllocationHistory:
    """Every stored epoch of one experiment, in time order: what new units were placed
    by at any moment (the report's expected shares for its sample-ratio check)."""

    experiment: ExperimentSettings
    epochs: tuple[EpochShares, ...]

    def shares_at(self, at: datetime) -> dict[str, float]:
        """The shares of the epoch ``at`` falls in; the declared shares before the first
        stored epoch (no unit can have been placed by the bandit then)."""
        i = bisect.bisect_right([e.start for e in self.epochs], at) - 1
        if i < 0:
            return {v.name: v.share for v in self.experiment.variants}
        shares = self.epochs[i].shares
        return {v: float(shares.get(v, 0.0)) for v in self.experiment.variant_names}


def allocation_history(store: Any, experiment: ExperimentSettings) -> AllocationHistory:
    """The stored epochs of ``experiment``."""
    table = models.ExperimentAllocation.__table__
    with store.engine.connect() as conn:
        rows = conn.execute(select(table).where(table.c.experiment == experiment.name)
                            .order_by(table.c.epoch_start)).all()
    return AllocationHistory(experiment, tuple(_row(experiment.name, r) for r in rows))


def place(experiment: ExperimentSettings, bucket: float, shares: Mapping[str, float]) -> str:
    """The variant whose range of [0, 1) holds ``bucket``, ranges cut by ``shares`` in
    declaration order (the last one ends at 1, so rounding never leaves a gap)."""
    if not 0 <= bucket < 1:
        raise ValueError(f"bucket must be in [0, 1), got {bucket!r}")
    missing = [v for v in experiment.variant_names if v not in shares]
    if missing:
        raise ValueError(f"shares of experiment {experiment.name!r} miss {missing}")
    edge = 0.0
    for name in experiment.variant_names[:-1]:
        edge += float(shares[name])
        if bucket < edge:
            return name
    return experiment.variant_names[-1]
