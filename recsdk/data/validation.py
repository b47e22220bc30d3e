"""Column-wise event checks: the rules of :mod:`recsdk.rules`, on whole columns.

Bulk imports cannot push millions of rows through marshmallow one by one, so each
column is factorised and every *distinct* value goes through the same rule function
that the schemas and the fast path of :func:`recsdk.schemas.load_events` call: the
verdicts and normalised values are those of the JSON API by construction (repeated
ids and timestamps are checked once). Each check returns normalised values and
boolean masks of the rows that break a rule; cleaning drops and reports those rows,
strict writing refuses the batch naming them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from recsdk import rules
from recsdk.data.report import CleaningReport
from recsdk.errors import ValidationFailed
from recsdk.rules import ID_LENGTH, MAX_CLOCK_SKEW, MAX_JSON_DEPTH, MIN_TIMESTAMP, RuleError

TIMESTAMP_DTYPE = "datetime64[us, UTC]"
_ID_RULES = (f"not text or a whole number, empty, longer than {ID_LENGTH} characters, or "
             "holding a NUL character or an unpaired surrogate")
#: Messages, per rule, in the words of recsdk.rules where it has them.
MESSAGES = {
    "missing_user_id": "user_id is missing.",
    "missing_item_id": "item_id is missing.",
    "missing_type": "type is missing.",
    "invalid_user_id": f"{rules.ID_MESSAGE} ({_ID_RULES})",
    "invalid_item_id": f"{rules.ID_MESSAGE} ({_ID_RULES})",
    "invalid_session_id": f"{rules.ID_MESSAGE} ({_ID_RULES})",
    "invalid_event_id": f"{rules.ID_MESSAGE} ({_ID_RULES})",
    "invalid_type": rules.TYPE_MESSAGE,
    "missing_timestamp": "timestamp is missing.",
    "unparseable_timestamp": f"{rules.TIMESTAMP_MESSAGE} (or out of range once converted "
                             "to UTC)",
    "timestamp_before_1990": "Timestamp is before 1990-01-01; milliseconds given as seconds?",
    "timestamp_in_future": "Timestamp is more than a day in the future (UNIX milliseconds "
                           "given as seconds?).",
    "invalid_value": f"value: {rules.NUMBER_MESSAGE}",
    "rating_without_value": "A rating event needs a numeric value.",
    "invalid_context": f"context must be a JSON object: text keys, at most {MAX_JSON_DEPTH} "
                       "levels deep, finite numbers, no NUL characters or unpaired "
                       "surrogates.",
}
#: What a timestamp RuleError's kind means as a row rule.
_TIMESTAMP_RULES = {"invalid": "unparseable_timestamp", "past": "timestamp_before_1990",
                    "future": "timestamp_in_future"}


class _Unhashable:
    """Stands in for dicts and lists in an id, type or time column (never valid there)."""

    def __repr__(self) -> str:
        return "<unhashable value>"


_UNHASHABLE = _Unhashable()


def _key(value: object) -> object:
    """A hashable key that keeps values of different types apart (1, 1.0, True)."""
    try:
        hash(value)
    except TypeError:
        return (_Unhashable, _UNHASHABLE)
    return (type(value), value)


def _distinct(series: pd.Series) -> tuple[np.ndarray, list[Any]]:
    """Row codes (-1 for null) and the distinct values they point to.

    ``pd.factorize`` alone would merge ``1``, ``1.0`` and ``True`` (they are equal
    in Python) although the rules treat them differently, so object columns are
    factorised on (type, value).
    """
    if isinstance(series.dtype, pd.CategoricalDtype):
        return _used_categories(series)
    if series.dtype != object:
        codes, uniques = pd.factorize(series, use_na_sentinel=True)
        return codes, uniques.to_numpy(dtype=object).tolist()
    values = series.to_numpy(dtype=object)
    null = series.isna().to_numpy()
    keys = np.empty(len(values), dtype=object)
    keys[:] = [None if n else _key(v) for v, n in zip(values, null, strict=True)]
    codes, uniques = pd.factorize(keys, use_na_sentinel=True)
    return codes, [key[1] for key in uniques]


def _used_categories(series: pd.Series) -> tuple[np.ndarray, list[Any]]:
    """Row codes into the categories the rows use, and those categories.

    A chunk streamed from a large import shares its column's categories with every
    other chunk (all ids of the file); checking only the used ones keeps a chunk's cost
    independent of the file's size (numpy passes over the categories, no Python loop).
    """
    codes = series.cat.codes.to_numpy()
    has = codes >= 0
    used, inverse = np.unique(codes[has], return_inverse=True)
    out = np.full(len(codes), -1, dtype=np.int64)
    out[has] = inverse
    return out, series.cat.categories[used].to_numpy(dtype=object).tolist()


@dataclass
class Ruled:
    """Per row: the normalised value (None if null or refused) and the refusal's kind.

    ``codes`` and ``distinct`` (the normalised distinct values, None where refused)
    let a caller convert the distinct values once instead of every row.
    """

    values: np.ndarray
    kinds: np.ndarray
    codes: np.ndarray
    distinct: np.ndarray
    #: the distinct values as they were, before the rule
    originals: list[Any]

    def refused(self, kind: str | None = None) -> np.ndarray:
        if kind is None:
            return self.kinds != ""
        return self.kinds == kind


def by_rule(series: pd.Series, rule: Callable[[Any], Any], *,
            distinct_values: bool = False) -> Ruled:
    """Apply ``rule`` once per distinct non-null value of ``series``; broadcast back.

    With ``distinct_values`` the per-row values are left empty (the caller takes
    ``distinct`` by ``codes`` itself).
    """
    codes, uniques = _distinct(series)
    values = np.empty(len(uniques), dtype=object)
    kinds = np.full(len(uniques), "", dtype=object)
    for pos, value in enumerate(uniques):
        try:
            values[pos] = rule(value)
        except RuleError as exc:
            kinds[pos] = exc.kind or "invalid"
    has = codes >= 0
    row_values = np.full(len(series), None, dtype=object)
    if not distinct_values:
        row_values[has] = values[codes[has]]
    row_kinds = np.full(len(series), "", dtype=object)
    row_kinds[has] = kinds[codes[has]]
    return Ruled(row_values, row_kinds, codes, values, uniques)


def _missing(series: pd.Series) -> np.ndarray:
    """Null cells, and empty text (a CSV's empty field) where the column holds text."""
    missing = series.isna().to_numpy()
    if isinstance(series.dtype, pd.CategoricalDtype):
        cats = series.cat.categories
        if cats.dtype == object or cats.dtype == "str":  # only the used categories: see
            codes = series.cat.codes.to_numpy()           # _used_categories
            used = np.unique(codes[codes >= 0])
            empty = used[np.asarray(cats[used] == "", dtype=bool)]
            if len(empty):
                missing = missing | np.isin(codes, empty)
    elif series.dtype == object or series.dtype == "str":
        missing = missing | series.eq("").to_numpy(dtype=bool, na_value=False)
    return missing


@dataclass
class Checked:
    """Normalised values of one column and the masks of rows that break its rules."""

    values: pd.Series
    problems: dict[str, np.ndarray]


def _text_series(values: np.ndarray, unchanged: pd.Series, keep: bool) -> pd.Series:
    """The normalised text column: ``unchanged`` itself when nothing changed."""
    if keep:
        return unchanged
    return pd.Series(values, index=unchanged.index).astype("str")


def check_ids(series: pd.Series, field: str, *, required: bool) -> Checked:
    """Ids by :func:`recsdk.rules.identifier`: non-empty text of at most ID_LENGTH.

    An empty text is a missing required id, and an invalid optional one (as in the
    schema; files read by :func:`read_table` have no empty texts, only nulls).
    """
    missing = _missing(series) if required else series.isna().to_numpy()
    ruled = by_rule(series, rules.identifier)
    invalid = ruled.refused() & ~missing
    text_column = series.dtype == "str" or (
        isinstance(series.dtype, pd.CategoricalDtype)
        and series.cat.categories.dtype in ("str", object)
        and all(isinstance(c, str) for c in ruled.originals))
    values = ruled.values
    values[missing] = None
    keep = text_column and not invalid.any()
    problems = {f"invalid_{field}": invalid}
    if required:
        problems[f"missing_{field}"] = missing
    return Checked(_text_series(values, series, keep), problems)


def check_types(series: pd.Series) -> tuple[Checked, np.ndarray]:
    """Event types by :func:`recsdk.rules.event_type`: trimmed and lower-cased.

    Returns the check and the mask of valid rows whose text the normalisation changed.
    """
    missing = _missing(series)
    ruled = by_rule(series, rules.event_type)
    invalid = ruled.refused() & ~missing
    values = ruled.values
    values[missing] = None
    original = series.to_numpy(dtype=object)
    changed = ~invalid & ~missing & (values != original)
    keep = (isinstance(series.dtype, pd.CategoricalDtype) or series.dtype == "str") and not (
        invalid | changed).any()
    return (Checked(_text_series(values, series, keep),
                    {"missing_type": missing, "invalid_type": invalid}), changed)


def parse_timestamps(series: pd.Series, now: datetime | None = None) -> Checked:
    """Aware UTC times by :func:`recsdk.rules.timestamp`, against the clock ``now``.

    Problems: missing, unparseable (or out of range once converted to UTC), before
    1990 and more than MAX_CLOCK_SKEW ahead of ``now``. Columns that already hold
    datetimes are checked vectorised (naive means UTC, as in the rule).
    """
    now = now or rules.clock()
    now = now.replace(tzinfo=UTC) if now.tzinfo is None else now
    missing = _missing(series)
    if pd.api.types.is_datetime64_any_dtype(series):
        ts = series.dt.tz_localize("UTC") if series.dt.tz is None else series.dt.tz_convert(
            "UTC")
        ts = ts.astype(TIMESTAMP_DTYPE)
        past = (ts < pd.Timestamp(MIN_TIMESTAMP)).to_numpy(dtype=bool)
        future = (ts > pd.Timestamp(now + MAX_CLOCK_SKEW)).to_numpy(dtype=bool)
        unparseable = np.zeros(len(series), dtype=bool)
    else:
        ruled = by_rule(series, lambda v: rules.timestamp(v, now), distinct_values=True)
        ok = ~ruled.refused() & ~missing
        moments = pd.to_datetime(pd.Series(ruled.distinct), utc=True).astype(TIMESTAMP_DTYPE)
        ts = pd.Series(pd.api.extensions.take(moments.array, np.where(ok, ruled.codes, -1),
                                              allow_fill=True), index=series.index)
        kinds = {rule: ruled.refused(kind) & ~missing for kind, rule in _TIMESTAMP_RULES.items()}
        unparseable, past, future = (kinds["unparseable_timestamp"],
                                     kinds["timestamp_before_1990"],
                                     kinds["timestamp_in_future"])
    return Checked(ts, {"missing_timestamp": missing, "unparseable_timestamp": unparseable,
                        "timestamp_before_1990": past, "timestamp_in_future": future})


def check_values(series: pd.Series, types: pd.Series) -> Checked:
    """Optional numbers by :func:`recsdk.rules.number`; a rating must have one."""
    missing = _missing(series)
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        arr = series.to_numpy(dtype=float, na_value=np.nan)
        invalid = ~missing & ~np.isfinite(arr)
    else:
        ruled = by_rule(series, rules.number)
        invalid = ruled.refused() & ~missing
        arr = np.full(len(series), np.nan)
        ok = ~invalid & ~missing
        arr[ok] = ruled.values[ok].astype(float)
    arr = np.where(invalid | missing, np.nan, arr)
    rating = types.astype(object).eq("rating").to_numpy()
    return Checked(pd.Series(arr, index=series.index),
                   {"invalid_value": invalid, "rating_without_value": rating & np.isnan(arr)
                    & ~invalid})


def _is_null(value: object) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def check_context(series: pd.Series) -> Checked:
    """Context by :func:`recsdk.rules.json_object`: a JSON object, or nothing."""
    obj = series.astype(object)
    invalid = np.zeros(len(obj), dtype=bool)
    for pos, value in enumerate(obj.to_numpy()):
        if _is_null(value):
            continue
        try:
            rules.json_object(value, "context")
        except RuleError:
            invalid[pos] = True
    ok = ~invalid & ~obj.map(_is_null).to_numpy(dtype=bool)
    return Checked(obj.where(ok, None), {"invalid_context": invalid})


def raise_for_problems(problems: dict[str, np.ndarray], frame: pd.DataFrame, what: str,
                       limit: int = 20) -> None:
    """Raise one :class:`ValidationFailed` naming up to ``limit`` bad rows and fields."""
    messages: dict[int, dict[str, list[str]]] = {}
    total = np.zeros(len(frame), dtype=bool)
    for rule, mask in problems.items():
        total = total | mask
        field = _field_of(rule)
        for pos in np.flatnonzero(mask)[:limit]:
            row = int(frame["_row"].iat[pos]) if "_row" in frame.columns else int(pos)
            messages.setdefault(row, {}).setdefault(field, []).append(MESSAGES.get(rule, rule))
    if not messages:
        return
    shown = dict(sorted(messages.items())[:limit])
    bad = int(total.sum())
    out: dict[object, object] = dict(shown)
    if bad > len(shown):
        out["_more"] = [f"{bad - len(shown)} more invalid rows not listed"]
    raise ValidationFailed(out, what)


def _field_of(rule: str) -> str:
    for field in ("user_id", "item_id", "session_id", "event_id", "timestamp", "context"):
        if field in rule:
            return field
    if rule.endswith("type"):
        return "type"
    return "value"


#: The event columns of a :class:`recsdk.data.frames.ShopData`, in order.
EVENT_COLUMNS = ("user_id", "session_id", "item_id", "type", "timestamp", "value", "event_id")


def check_events(frame: pd.DataFrame, now: datetime | None = None
                 ) -> tuple[pd.DataFrame, dict[str, np.ndarray], np.ndarray]:
    """Normalise every event column; return the frame, rule masks and changed types.

    The output has :data:`EVENT_COLUMNS` (plus ``context`` and ``_row`` when the
    input has them); values that break a rule are left empty in it.
    """
    n = len(frame)

    def column(name: str) -> pd.Series:
        if name in frame.columns:
            return frame[name]
        return pd.Series(np.full(n, None, dtype=object), index=frame.index)

    users = check_ids(column("user_id"), "user_id", required=True)
    items = check_ids(column("item_id"), "item_id", required=True)
    types, type_changed = check_types(column("type"))
    stamps = parse_timestamps(column("timestamp"), now)
    values = check_values(column("value"), types.values)
    sessions = check_ids(column("session_id"), "session_id", required=False)
    event_ids = check_ids(column("event_id"), "event_id", required=False)
    out = pd.DataFrame({
        "user_id": users.values, "session_id": sessions.values, "item_id": items.values,
        "type": types.values, "timestamp": stamps.values, "value": values.values,
        "event_id": event_ids.values,
    }, index=frame.index)
    problems: dict[str, np.ndarray] = {}
    for checked in (users, items, types, stamps, values, sessions, event_ids):
        problems.update(checked.problems)
    if "context" in frame.columns:
        context = check_context(frame["context"])
        out["context"] = context.values
        problems.update(context.problems)
    if "_row" in frame.columns:
        out["_row"] = frame["_row"].to_numpy()
    return out, problems, type_changed


def require_valid_events(frame: pd.DataFrame, what: str = "events",
                         now: datetime | None = None) -> pd.DataFrame:
    """The normalised events, or :class:`ValidationFailed` naming the bad rows."""
    out, problems, _ = check_events(frame, now)
    raise_for_problems(problems, out, what)
    return out


#: The order in which row rules are applied; a row is counted by the first it breaks.
ROW_RULES = (
    "missing_user_id", "invalid_user_id", "missing_item_id", "invalid_item_id",
    "missing_type", "invalid_type", "missing_timestamp", "unparseable_timestamp",
    "timestamp_before_1990", "timestamp_in_future", "invalid_value",
    "rating_without_value", "invalid_event_id", "invalid_context",
)
#: Columns shown in example rows.
EXAMPLE_COLUMNS = ("user_id", "item_id", "type", "timestamp", "value", "session_id",
                   "event_id")


def drop_invalid_events(events: pd.DataFrame, report: CleaningReport, *,
                        now: datetime | None = None, missing_timestamp: str = "drop",
                        examples: int = 5) -> pd.DataFrame:
    """The rows that pass recsdk's event rules, normalised; the rest are reported.

    Every dropped row is counted in ``report`` under the first rule it breaks, with
    example rows showing the values as given. Changes are reported too: types
    trimmed and lower-cased, too-long session ids cleared, missing timestamps set to
    ``now`` when ``missing_timestamp="now"``. The result keeps a ``_row`` column: the
    row's 0-based position in ``events``, unless ``events`` already had one.
    """
    source = events.reset_index(drop=True)
    if "_row" not in source.columns:
        source = source.assign(_row=np.arange(len(source)))
    checked, problems, type_changed = check_events(source, now)

    def add(rule: str, action: Any, mask: np.ndarray, reason: str) -> None:
        report.add(rule, action, mask, reason, frame=source, columns=EXAMPLE_COLUMNS,
                   examples=examples)

    if missing_timestamp == "now":
        fill = problems.pop("missing_timestamp")
        stamp = pd.Timestamp(now or datetime.now(UTC))
        stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
        checked.loc[fill, "timestamp"] = stamp
        add("timestamp_set_to_now", "changed", fill,
            "no timestamp: stamped with the time of cleaning (missing_timestamp='now')")
    drop = np.zeros(len(source), dtype=bool)
    for rule in ROW_RULES:
        if rule in problems:
            mask = problems[rule] & ~drop
            add(rule, "dropped", mask, MESSAGES[rule])
            drop = drop | mask
    bad_session = problems["invalid_session_id"] & ~drop
    add("invalid_session_id", "changed", bad_session,
        "session_id too long or not text: cleared (cleaning assigns a session)")
    add("type_normalised", "changed", type_changed & ~drop,
        "event type trimmed and lower-cased")
    kept = checked.loc[~drop]
    if bad_session.any():
        kept = kept.copy()
        kept.loc[bad_session[~drop], "session_id"] = np.nan
    return kept.reset_index(drop=True)
