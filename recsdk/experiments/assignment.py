"""Which variant a unit sees: deterministic, sticky, uniform; and the QA override.

A unit's place in an experiment is a stable hash (BLAKE2b, never Python's ``hash()``,
which is salted per process) of ``"{salt}:{unit_id}"`` mapped to [0, 1). Nothing is
stored: every serving process, and the same process after a restart, computes the same
answer from the settings alone.

The hash space is cut once, by the declared (final) shares, into one range per variant,
in declaration order. While an experiment ramps up, a variant serves only the first
``current share`` of its range; the rest of the range is not yet in the experiment
(default pipeline, not counted). Shares may only grow, so a range's served part only
grows: a unit once in a variant never moves to another, it can only be joined by new
units. Holdout and the layer slice use hashes of their own, independent of the
variant hash, so neither changes the split between variants.

All of that is the fixed allocation. A Thompson-allocated experiment changes its shares
every epoch, so a hash alone cannot keep a unit in its arm: those units are placed and
remembered by :mod:`recsdk.experiments.sticky` (window, targeting, layer and holdout are
still the hashes here).
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from recsdk.errors import ConfigurationError, ValidationFailed
from recsdk.experiments.config import HOLDOUT, ExperimentSettings

#: 53 bits: every bucket is an exact float in [0, 1).
_BITS = 53
_SCALE = float(2**_BITS)


@dataclass(frozen=True)
class Assignment:
    """A unit's arm in one experiment. ``holdout``: the placement's default pipeline,
    counted as the holdout arm; ``forced``: a QA override, never counted."""

    experiment: str
    variant: str
    holdout: bool = False
    forced: bool = False


#: Assigns a unit of a Thompson experiment: (experiment, unit, now, is_returning).
StickyAssign = Callable[[ExperimentSettings, str | None, datetime, bool], Assignment | None]


def bucket(key: str, unit_id: str) -> float:
    """Where ``unit_id`` falls in [0, 1) for ``key`` (a salt), the same everywhere."""
    digest = hashlib.blake2b(f"{key}:{unit_id}".encode("utf-8", "surrogatepass"),
                             digest_size=8).digest()
    return (int.from_bytes(digest, "big") >> (64 - _BITS)) / _SCALE


def buckets(key: str, unit_ids: Iterable[str]) -> np.ndarray:
    """:func:`bucket` of many units at once (simulations, sample-ratio checks)."""
    blob = b"".join(hashlib.blake2b(f"{key}:{u}".encode("utf-8", "surrogatepass"),
                                    digest_size=8).digest() for u in unit_ids)
    return (np.frombuffer(blob, dtype=">u8") >> np.uint64(64 - _BITS)) / _SCALE


def unit_of(experiment: ExperimentSettings, user_id: str | None,
            session_id: str | None) -> str | None:
    """The unit id an experiment randomises: ``user:ID``, or ``session:ID``.

    Unit "user" falls back to the session of an anonymous visitor (who then may see
    another variant once signed in: the price of not tracking across log-in); unit
    "session" needs a session. The prefixes keep a user and a session of the same id
    apart. None: no unit, so no experiment.
    """
    if experiment.unit == "user" and user_id is not None:
        return f"user:{user_id}"
    if session_id is not None:
        return f"session:{session_id}"
    return None


def _running(experiment: ExperimentSettings, now: datetime) -> bool:
    return ((experiment.start is None or experiment.start <= now)
            and (experiment.stop is None or now < experiment.stop))


def _targeted(experiment: ExperimentSettings, is_returning: bool) -> bool:
    return (experiment.audience == "all"
            or (experiment.audience == "returning") == bool(is_returning))


def _full(experiment: ExperimentSettings) -> bool:
    return experiment.layer_range == (0.0, 1.0)


def admitted(experiment: ExperimentSettings, unit_id: str | None, now: datetime,
             is_returning: bool = False) -> bool:
    """Whether the unit may be in the experiment at ``now``: it has a unit, the
    experiment runs, targets it, and the unit is in the experiment's slice of its layer
    (hashes only, whatever the allocation)."""
    if unit_id is None or not _running(experiment, now) or not _targeted(experiment,
                                                                          is_returning):
        return False
    if not _full(experiment):
        lo, hi = experiment.layer_range
        if not lo <= bucket(f"layer:{experiment.layer}", unit_id) < hi:
            return False
    return True


def held_out(experiment: ExperimentSettings, unit_id: str) -> bool:
    """Whether the unit is in the holdout: its own hash, outside any allocation."""
    return bool(experiment.holdout) and bucket(f"{experiment.salt}:holdout",
                                               unit_id) < experiment.holdout


def _fixed_only(experiment: ExperimentSettings) -> None:
    if experiment.allocation.method != "fixed":
        raise ValueError(
            f"experiment {experiment.name!r} allocates by {experiment.allocation.method!r}: "
            "its units' arms depend on when they came and are stored, so assign them with "
            "recsdk.experiments.sticky.ThompsonAssigner (which needs the database)")


def assign(experiment: ExperimentSettings, unit_id: str | None, now: datetime,
           is_returning: bool = False) -> Assignment | None:
    """The unit's arm, or None: outside the window, not targeted, outside the
    experiment's slice of its layer, or not yet in a ramping variant's served part.
    Fixed allocation only (a ValueError for a Thompson experiment)."""
    _fixed_only(experiment)
    if not admitted(experiment, unit_id, now, is_returning):
        return None
    assert unit_id is not None
    if held_out(experiment, unit_id):
        return Assignment(experiment.name, HOLDOUT, holdout=True)
    u = bucket(experiment.salt, unit_id)
    starts = experiment.range_starts
    i = bisect.bisect_right(starts, u) - 1
    variant = experiment.variants[i]
    served = experiment.shares_at(now)[variant.name]
    if served < variant.share and u - starts[i] >= served:
        return None
    return Assignment(experiment.name, variant.name)


def assign_many(experiment: ExperimentSettings, unit_ids: Sequence[str], now: datetime,
                is_returning: bool = False) -> np.ndarray:
    """:func:`assign` of many units, as variant names ("" for none); same arithmetic."""
    _fixed_only(experiment)
    out = np.full(len(unit_ids), "", dtype=object)
    if not _running(experiment, now) or not _targeted(experiment, is_returning):
        return out
    inside = np.ones(len(unit_ids), dtype=bool)
    if not _full(experiment):
        lo, hi = experiment.layer_range
        b = buckets(f"layer:{experiment.layer}", unit_ids)
        inside = (lo <= b) & (b < hi)
    held = np.zeros(len(unit_ids), dtype=bool)
    if experiment.holdout:
        held = inside & (buckets(f"{experiment.salt}:holdout", unit_ids) < experiment.holdout)
    u = buckets(experiment.salt, unit_ids)
    starts = np.array(experiment.range_starts)
    idx = np.searchsorted(starts, u, side="right") - 1
    shares = experiment.shares_at(now)
    served = np.array([shares[v.name] for v in experiment.variants])
    declared = np.array([v.share for v in experiment.variants])
    ok = (served[idx] >= declared[idx]) | (u - starts[idx] < served[idx])
    names = np.array(experiment.variant_names, dtype=object)
    take = inside & ~held & ok
    out[take] = names[idx[take]]
    out[held] = HOLDOUT
    return out


def force(experiment: ExperimentSettings, variant: str) -> Assignment:
    """A QA override: ``variant`` whatever the hash, window or targeting; flagged
    ``forced`` so the analysis leaves it out. An unknown variant is a bad request."""
    allowed = list(experiment.variant_names) + ([HOLDOUT] if experiment.holdout else [])
    if variant not in allowed:
        raise ValidationFailed({"variant": [
            f"experiment {experiment.name!r} has no variant {variant!r}; its variants: "
            f"{', '.join(allowed)}"]}, "request")
    return Assignment(experiment.name, variant, holdout=variant == HOLDOUT, forced=True)


class Experiments:
    """The experiments of a settings object, by placement: which one a unit is in.

    Experiments covering one placement share a layer with disjoint slices (the
    settings refuse anything else), so a unit is in at most one of them.
    """

    def __init__(self, experiments: Iterable[ExperimentSettings],
                 thompson: StickyAssign | None = None) -> None:
        """``thompson``: assigns the units of Thompson-allocated experiments (stored,
        sticky: :class:`recsdk.experiments.sticky.ThompsonAssigner`); fixed ones are
        hashed here, with no database."""
        self.experiments = tuple(experiments)
        self._thompson = thompson
        self._by_name = {e.name: e for e in self.experiments}
        self._by_placement: dict[str, list[ExperimentSettings]] = {}
        for e in self.experiments:
            for p in e.placements:
                self._by_placement.setdefault(p, []).append(e)

    def __bool__(self) -> bool:
        return bool(self.experiments)

    def get(self, name: str) -> ExperimentSettings:
        return self._by_name[name]

    def for_placement(self, placement: str) -> list[ExperimentSettings]:
        return list(self._by_placement.get(placement, ()))

    def assign(self, placement: str, *, user_id: str | None, session_id: str | None,
               now: datetime, is_returning: bool = False,
               force_variant: str | None = None) -> Assignment | None:
        """The unit's experiment and arm at ``placement``, or None (default pipeline).

        ``force_variant``: ``"EXPERIMENT:VARIANT"``, or ``"VARIANT"`` when one
        experiment at the placement has it (QA; a 400 when it does not exist).
        """
        here = self.for_placement(placement)
        if force_variant is not None:
            return self._forced(placement, here, force_variant)
        for e in here:
            unit = unit_of(e, user_id, session_id)
            if e.allocation.method == "fixed":
                got = assign(e, unit, now, is_returning)
            elif self._thompson is None:
                raise ConfigurationError(
                    f"experiments.{e.name}: allocation {e.allocation.method!r} needs the "
                    "database to keep each unit's arm; this Experiments has no assigner for "
                    "it (RecSDK makes one)")
            else:
                got = self._thompson(e, unit, now, is_returning)
            if got is not None:
                return got
        return None

    def _forced(self, placement: str, here: list[ExperimentSettings], spec: str
                ) -> Assignment:
        names = ", ".join(f"{e.name}:{v}" for e in here
                          for v in (*e.variant_names, *([HOLDOUT] if e.holdout else [])))
        if not here:
            raise ValidationFailed({"variant": [
                f"no experiment runs on placement {placement!r}, so variant {spec!r} cannot "
                "be forced"]}, "request")
        if ":" in spec:
            name, _, variant = spec.partition(":")
            matches = [e for e in here if e.name == name]
            if not matches:
                raise ValidationFailed({"variant": [
                    f"no experiment {name!r} on placement {placement!r}; variants here: "
                    f"{names}"]}, "request")
            return force(matches[0], variant)
        matches = [e for e in here if spec in e.variant_names
                   or (spec == HOLDOUT and e.holdout)]
        if len(matches) == 1:
            return force(matches[0], spec)
        problem = "is ambiguous (say EXPERIMENT:VARIANT)" if matches else "does not exist"
        raise ValidationFailed({"variant": [
            f"forced variant {spec!r} {problem} on placement {placement!r}; variants here: "
            f"{names}"]}, "request")
