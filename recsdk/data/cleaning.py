"""Clean a behaviour log before training: every dropped or changed row is reported.

:func:`clean_events` applies, in order: recsdk's event rules (ids, type, timestamp,
value; see :mod:`recsdk.data.validation`), value ranges, the unknown-type policy,
duplicates, bot-like users, sessions split by an inactivity gap and implicit-feedback
weights. Each rule records its count, reason and example rows in a
:class:`~recsdk.data.report.CleaningReport`, and the report checks that every input
row is either kept or dropped by exactly one rule. The catalogue checks live in
:mod:`recsdk.data.catalog_checks` and are re-exported here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Literal

import numpy as np
import pandas as pd

from recsdk.config import DEFAULT_EVENT_WEIGHTS
from recsdk.data.catalog_checks import check_categories, check_items, check_users
from recsdk.data.report import CleaningReport
from recsdk.data.validation import (
    EVENT_COLUMNS,
    EXAMPLE_COLUMNS,
    TIMESTAMP_DTYPE,
    drop_invalid_events,
)
from recsdk.errors import ValidationFailed
from recsdk.schemas import ID_LENGTH

__all__ = ["CleaningConfig", "check_categories", "check_items", "check_users",
           "clean_events"]

MICROS_PER_MINUTE = 60_000_000
MICROS_PER_DAY = 86_400_000_000


@dataclass(frozen=True)
class CleaningConfig:
    """Thresholds and policies of :func:`clean_events` (defaults in docs/data.md).

    ``unknown_types``: what to do with well-formed types that ``event_weights`` does
    not list: ``keep`` (weight 1.0, reported), ``drop`` (reported) or ``error``.
    ``missing_timestamp``: ``drop`` rows without one, or stamp them ``now``.
    A ``max_*`` threshold of None switches that bot rule off. ``value_ranges`` maps
    an event type to the (low, high) values it may carry, e.g. ``{"rating": (1, 5)}``.
    """

    event_weights: Mapping[str, float] = field(
        default_factory=lambda: dict(DEFAULT_EVENT_WEIGHTS))
    unknown_types: Literal["keep", "drop", "error"] = "keep"
    missing_timestamp: Literal["drop", "now"] = "drop"
    drop_duplicates: bool = True
    max_events_per_minute: int | None = 60
    max_events_per_day: int | None = 2_000
    max_distinct_items_per_day: int | None = 1_000
    value_ranges: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    session_gap: timedelta = timedelta(minutes=30)
    assign_sessions: bool = True
    examples: int = 5
    now: datetime | None = None

    def __post_init__(self) -> None:
        if self.unknown_types not in ("keep", "drop", "error"):
            raise ValueError(f"unknown_types must be keep, drop or error, not "
                             f"{self.unknown_types!r}")
        if self.missing_timestamp not in ("drop", "now"):
            raise ValueError(f"missing_timestamp must be drop or now, not "
                             f"{self.missing_timestamp!r}")
        if self.session_gap <= timedelta(0):
            raise ValueError("session_gap must be positive")
        for name in ("max_events_per_minute", "max_events_per_day",
                     "max_distinct_items_per_day"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1 or None")
        for kind, bounds in self.value_ranges.items():
            if len(bounds) != 2 or bounds[0] > bounds[1]:
                raise ValueError(f"value_ranges[{kind!r}] must be (low, high), got {bounds}")

    def with_weights(self, weights: Mapping[str, float]) -> CleaningConfig:
        """The same config with the weights of a :class:`recsdk.config.Settings`."""
        return replace(self, event_weights=dict(weights))


def clean_events(events: pd.DataFrame, config: CleaningConfig | None = None
                 ) -> tuple[pd.DataFrame, CleaningReport]:
    """Return the clean events (ShopData layout plus ``weight``) and the report.

    Row numbers in the report are 0-based positions in ``events`` (or its ``_row``
    column when it has one). The clean frame keeps the input's order.
    """
    config = config or CleaningConfig()
    report = CleaningReport("events", input_rows=len(events))
    frame = drop_invalid_events(events, report, now=config.now,
                                missing_timestamp=config.missing_timestamp,
                                examples=config.examples)
    for rule in (_value_ranges, _unknown_types, _duplicates, _bots):
        frame = rule(frame, config, report)
    frame = frame.copy()
    if config.assign_sessions:
        assigned = _assign_sessions(frame, config.session_gap)
        report.add("session_assigned", "changed", assigned, "no session_id: named "
                   "<user>@<start>, a new one where the user pauses more than "
                   f"{config.session_gap}",
                   frame=frame, columns=("user_id", "timestamp", "session_id"),
                   examples=config.examples)
    weights = {k: float(v) for k, v in config.event_weights.items()}
    frame["weight"] = frame["type"].astype(object).map(weights).fillna(1.0).astype(float)
    report.add("negative_weight", "kept", frame["weight"].to_numpy() < 0,
               "kept with a negative weight: the event counts against the item "
               "(e.g. return)", frame=frame, columns=("user_id", "item_id", "type"),
               examples=config.examples)
    columns = [*EVENT_COLUMNS, "weight"] + (["context"] if "context" in frame else [])
    out = frame[columns].reset_index(drop=True)
    report.kept_rows = len(out)
    report.check_balance()
    return out, report


def _drop(frame: pd.DataFrame, mask: np.ndarray, rule: str, reason: str,
          config: CleaningConfig, report: CleaningReport) -> pd.DataFrame:
    report.add(rule, "dropped", mask, reason, frame=frame, columns=EXAMPLE_COLUMNS,
               examples=config.examples)
    return frame.loc[~mask] if mask.any() else frame


def _value_ranges(frame: pd.DataFrame, config: CleaningConfig,
                  report: CleaningReport) -> pd.DataFrame:
    for kind, (low, high) in config.value_ranges.items():
        values = frame["value"].to_numpy(dtype=float)
        mask = (frame["type"].astype(object).eq(kind).to_numpy() & ~np.isnan(values)
                & ((values < low) | (values > high)))
        frame = _drop(frame, mask, f"value_out_of_range:{kind}",
                      f"{kind} value outside [{low}, {high}]", config, report)
    return frame


def _unknown_types(frame: pd.DataFrame, config: CleaningConfig,
                   report: CleaningReport) -> pd.DataFrame:
    """Types outside ``event_weights``: kept (weight 1.0), dropped or refused."""
    unknown = ~frame["type"].astype(object).isin(set(config.event_weights)).to_numpy()
    if not unknown.any():
        return frame
    names = ", ".join(sorted(pd.unique(frame.loc[unknown, "type"].astype(str)))[:10])
    if config.unknown_types == "error":
        message = (f"Unknown event type (event_weights lists "
                   f"{', '.join(sorted(config.event_weights))}).")
        rows = frame["_row"].to_numpy()[unknown]
        raise ValidationFailed({int(r): {"type": [message]} for r in rows[:20]}, "events")
    if config.unknown_types == "drop":
        return _drop(frame, unknown, "unknown_type", f"event type not in event_weights "
                     f"({names}); unknown_types='drop'", config, report)
    report.add("unknown_type", "kept", unknown, f"event type not in event_weights "
               f"({names}): kept with weight 1.0", frame=frame, columns=EXAMPLE_COLUMNS,
               examples=config.examples)
    return frame


def _duplicates(frame: pd.DataFrame, config: CleaningConfig,
                report: CleaningReport) -> pd.DataFrame:
    """Repeated event_ids, then rows equal in every field; the first one is kept."""
    if not config.drop_duplicates:
        return frame
    ids = frame["event_id"]
    mask = (ids.notna() & ids.duplicated()).to_numpy()
    frame = _drop(frame, mask, "duplicate_event_id",
                  "event_id seen before in this data: the first row with it is kept",
                  config, report)
    # only rows sharing user and time can be equal: compare all fields among those
    candidates = frame.duplicated(subset=["user_id", "timestamp"], keep=False).to_numpy()
    mask = np.zeros(len(frame), dtype=bool)
    if candidates.any():
        mask[candidates] = frame.loc[candidates].duplicated(
            subset=list(EVENT_COLUMNS)).to_numpy()
    return _drop(frame, mask, "duplicate_row", "exact duplicate of an earlier row (same "
                 "user, item, type, time, value, session)", config, report)


def _bots(frame: pd.DataFrame, config: CleaningConfig,
          report: CleaningReport) -> pd.DataFrame:
    """Drop every event of users whose activity no person produces."""
    limits = {"max_events_per_minute": config.max_events_per_minute,
              "max_events_per_day": config.max_events_per_day,
              "max_distinct_items_per_day": config.max_distinct_items_per_day}
    if all(v is None for v in limits.values()) or frame.empty:
        return frame
    users, user_names = pd.factorize(frame["user_id"])
    items = pd.factorize(frame["item_id"])[0]
    micros = frame["timestamp"].astype("int64").to_numpy()
    minute = micros // MICROS_PER_MINUTE
    day = micros // MICROS_PER_DAY
    n_users = len(user_names)
    measured = {
        "max_events_per_minute": _max_count_per_user(users, minute, n_users),
        "max_events_per_day": _max_count_per_user(users, day, n_users),
        "max_distinct_items_per_day": _max_distinct_per_user(users, day, items, n_users),
    }
    flagged = np.zeros(n_users, dtype=bool)
    reasons = []
    for name, limit in limits.items():
        if limit is not None:
            flagged |= measured[name] > limit
            reasons.append(f"{name.removeprefix('max_').replace('_', ' ')} > {limit}")
    if not flagged.any():
        return frame
    mask = flagged[users]
    codes = np.flatnonzero(flagged)
    rows = frame["_row"].to_numpy()
    examples = [{
        "user_id": str(user_names[c]), "events": int((users == c).sum()),
        "first_row": int(rows[np.argmax(users == c)]),
        **{name: int(measured[name][c]) for name in limits},
    } for c in codes[: config.examples]]
    report.note("bot_like_user", "dropped", int(mask.sum()),
                f"all events of {len(codes)} users with {' or '.join(reasons)}", examples)
    return frame.loc[~mask]


def _pair_keys(users: np.ndarray, buckets: np.ndarray) -> tuple[np.ndarray, int]:
    """One int64 per (user, time bucket), and the bucket span used to build it."""
    low = int(buckets.min())
    span = int(buckets.max()) - low + 1
    return users.astype(np.int64) * span + (buckets - low), span


def _max_count_per_user(users: np.ndarray, buckets: np.ndarray, n_users: int) -> np.ndarray:
    """Each user's largest number of events in one time bucket."""
    keys, span = _pair_keys(users, buckets)
    unique, counts = np.unique(keys, return_counts=True)
    out = np.zeros(n_users, dtype=np.int64)
    np.maximum.at(out, unique // span, counts)
    return out


def _max_distinct_per_user(users: np.ndarray, buckets: np.ndarray, items: np.ndarray,
                           n_users: int) -> np.ndarray:
    """Each user's largest number of distinct items in one time bucket."""
    keys, span = _pair_keys(users, buckets)
    pairs = pd.DataFrame({"k": keys, "i": items}).drop_duplicates()
    unique, counts = np.unique(pairs["k"].to_numpy(), return_counts=True)
    out = np.zeros(n_users, dtype=np.int64)
    np.maximum.at(out, unique // span, counts)
    return out


def _assign_sessions(kept: pd.DataFrame, gap: timedelta) -> np.ndarray:
    """Fill missing ``session_id`` in place with ``<user>@<start>``, the session's first
    event time (``20240101T120000Z``), a new session after a pause longer than ``gap``.

    Naming sessions by their start keeps the ids the same when the same events are
    imported again, and apart across files. Returns the mask of rows that got one.
    """
    missing = kept["session_id"].isna().to_numpy()
    if not missing.any():
        return missing
    part = kept.loc[missing, ["user_id", "timestamp"]]
    users = part["user_id"].astype(str).to_numpy(dtype=object)
    micros = part["timestamp"].astype("int64").to_numpy()
    user_codes, _ = pd.factorize(users)
    order = np.lexsort((micros, user_codes))
    u, t = user_codes[order], micros[order]
    new = np.r_[True, u[1:] != u[:-1]] | np.r_[True, np.diff(t) > gap.total_seconds() * 1e6]
    starts = pd.to_datetime(t[new], unit="us", utc=True).strftime("%Y%m%dT%H%M%SZ")
    names = pd.Series(users[order][new]) + "@" + pd.Series(np.asarray(starts, dtype=object))
    too_long = (names.str.len() > ID_LENGTH).to_numpy()
    if too_long.any():
        names[too_long] = [
            f"s-{hashlib.blake2b(n.encode(), digest_size=12).hexdigest()}"
            for n in names[too_long]]
    session_of_sorted = np.cumsum(new) - 1
    labels = np.empty(len(order), dtype=object)
    labels[order] = names.to_numpy(dtype=object)[session_of_sorted]
    column = kept["session_id"].astype(object).to_numpy(copy=True)
    column[missing] = labels
    kept["session_id"] = pd.Series(column, index=kept.index).astype("str")
    return missing


def empty_clean_events() -> pd.DataFrame:
    """An empty frame with the clean layout (useful for tables with no events)."""
    frame = pd.DataFrame({c: pd.Series(dtype="str") for c in EVENT_COLUMNS})
    frame["timestamp"] = pd.Series(dtype=TIMESTAMP_DTYPE)
    frame["value"] = pd.Series(dtype=float)
    frame["weight"] = pd.Series(dtype=float)
    return frame
