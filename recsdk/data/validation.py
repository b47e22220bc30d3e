"""Column-wise (vectorised) event checks with the same rules as :mod:`recsdk.schemas`.

Bulk imports cannot push millions of rows through marshmallow one by one, so the
rules of :class:`recsdk.schemas.EventSchema` are restated here on whole columns,
reusing its constants. Each check returns normalised values and boolean masks of the
rows that break a rule; cleaning drops and reports those rows, strict writing refuses
the batch naming them. Checks run on the distinct values of a column, so repeated ids
and timestamps are checked once.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from recsdk.data.report import CleaningReport
from recsdk.errors import ValidationFailed
from recsdk.schemas import EVENT_TYPE_PATTERN, ID_LENGTH, MAX_CLOCK_SKEW, MIN_TIMESTAMP

TIMESTAMP_DTYPE = "datetime64[us, UTC]"
MIN_UNIX_SECONDS = MIN_TIMESTAMP.timestamp()
#: Messages, per rule, in the words of recsdk.schemas where it has them.
MESSAGES = {
    "missing_user_id": "user_id is missing.",
    "missing_item_id": "item_id is missing.",
    "missing_type": "type is missing.",
    "invalid_user_id": f"Not a valid id: give a non-empty string of at most {ID_LENGTH} "
                       "characters.",
    "invalid_item_id": f"Not a valid id: give a non-empty string of at most {ID_LENGTH} "
                       "characters.",
    "invalid_session_id": f"Not a valid id: give a non-empty string of at most {ID_LENGTH} "
                          "characters.",
    "invalid_event_id": f"Not a valid id: give a non-empty string of at most {ID_LENGTH} "
                        "characters.",
    "invalid_type": "Event type must be lower-case letters, digits, '_', ':' or '-' "
                    "(at most 64), e.g. view, click, add_to_cart, purchase, rating.",
    "missing_timestamp": "timestamp is missing.",
    "unparseable_timestamp": "Not a valid timestamp: give ISO 8601 text or UNIX seconds.",
    "timestamp_before_1990": "Timestamp is before 1990-01-01; milliseconds given as seconds?",
    "timestamp_in_future": "Timestamp is more than a day in the future (UNIX milliseconds "
                           "given as seconds?).",
    "invalid_value": "value is not a finite number.",
    "rating_without_value": "A rating event needs a numeric value.",
    "invalid_context": "context must be an object (dict with text keys) or empty.",
}


class _Unhashable:
    """Stands in for dicts and lists in an id or type column (always invalid there)."""

    def __repr__(self) -> str:
        return "<unhashable value>"


_UNHASHABLE = _Unhashable()


def _factorize(series: pd.Series) -> tuple[np.ndarray, Any]:
    """``pd.factorize`` that survives dicts and lists (JSON lines can hold them)."""
    try:
        return pd.factorize(series, use_na_sentinel=True)
    except TypeError:
        safe = series.astype(object).map(
            lambda v: v if isinstance(v, Hashable) else _UNHASHABLE)
        return pd.factorize(safe, use_na_sentinel=True)


def _on_distinct(series: pd.Series, check: Callable[[pd.Series], pd.Series]) -> pd.Series:
    """Apply ``check`` to the distinct non-null values of ``series``; broadcast back.

    Rows with a null value get a null (NaT for datetimes, None otherwise).
    """
    codes, uniques = _factorize(series)
    results = check(pd.Series(np.asarray(uniques, dtype=object)))
    taken = pd.api.extensions.take(results.array, codes, allow_fill=True)
    return pd.Series(taken, index=series.index)


def _missing(series: pd.Series) -> np.ndarray:
    """Null cells, and empty text (a CSV's empty field) where the column holds text."""
    missing = series.isna().to_numpy()
    if isinstance(series.dtype, pd.CategoricalDtype):
        cats = series.cat.categories
        if (cats == "").any() if cats.dtype == object or cats.dtype == "str" else False:
            missing = missing | (series.cat.codes.to_numpy() == cats.get_loc(""))
    elif series.dtype == object or series.dtype == "str":
        missing = missing | series.eq("").to_numpy(dtype=bool, na_value=False)
    return missing


def _as_id(value: object) -> object:
    """The id as ``EventSchema``'s Identifier reads it: str, int->str, else invalid."""
    if isinstance(value, bool | np.bool_):
        return _INVALID
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))  # a JSON/CSV integer id read as float
    if isinstance(value, str):
        return value if 0 < len(value) <= ID_LENGTH else _INVALID
    return _INVALID


_INVALID = object()


@dataclass
class Checked:
    """Normalised values of one column and the masks of rows that break its rules."""

    values: pd.Series
    problems: dict[str, np.ndarray]


def check_ids(series: pd.Series, field: str, *, required: bool) -> Checked:
    """Ids: non-empty text of at most ID_LENGTH characters; integers become text.

    An empty text is a missing required id, and an invalid optional one (as in the
    schema; files read by :func:`read_table` have no empty texts, only nulls).
    """
    missing = _missing(series) if required else series.isna().to_numpy()
    if isinstance(series.dtype, pd.CategoricalDtype) and (
            series.cat.categories.dtype == "str" or series.cat.categories.dtype == object):
        cats = pd.Series(series.cat.categories.astype(object))
        bad_cat = cats.map(lambda v: _as_id(v) is _INVALID or not isinstance(v, str))
        codes = series.cat.codes.to_numpy()
        invalid = np.zeros(len(series), dtype=bool)
        invalid[codes >= 0] = bad_cat.to_numpy(dtype=bool)[codes[codes >= 0]]
        values = series
    else:
        codes, uniques = _factorize(series.astype(object))
        mapped = pd.Series(np.asarray(uniques, dtype=object)).map(_as_id).to_numpy(
            dtype=object, copy=True)
        bad = np.fromiter((v is _INVALID for v in mapped), dtype=bool, count=len(mapped))
        has = codes >= 0
        invalid = np.zeros(len(series), dtype=bool)
        invalid[has] = bad[codes[has]]
        if series.dtype == "str" and not bad.any():
            values = series  # already text, nothing to change
        else:
            mapped[bad] = None
            taken = np.full(len(series), None, dtype=object)
            taken[has] = mapped[codes[has]]
            taken[missing] = None
            values = pd.Series(taken, index=series.index).astype("str")
    invalid = invalid & ~missing
    problems = {f"invalid_{field}": invalid}
    if required:
        problems[f"missing_{field}"] = missing
    return Checked(values, problems)


def check_types(series: pd.Series) -> tuple[Checked, np.ndarray]:
    """Event types trimmed and lower-cased, then held to EVENT_TYPE_PATTERN.

    Returns the check and the mask of valid rows whose text the normalisation changed.
    """
    missing = _missing(series)
    if isinstance(series.dtype, pd.CategoricalDtype):
        codes = series.cat.codes.to_numpy()
        distinct = pd.Series(series.cat.categories.astype(object))
    else:
        codes, uniques = _factorize(series.astype(object))
        distinct = pd.Series(np.asarray(uniques, dtype=object))
    norm = distinct.map(lambda v: v.strip().lower() if isinstance(v, str) else None)
    good = norm.map(lambda v: isinstance(v, str) and bool(EVENT_TYPE_PATTERN.match(v)))
    good = good.to_numpy(dtype=bool)
    changed_distinct = (norm != distinct).to_numpy(dtype=bool) & good
    has = codes >= 0
    good_rows = np.zeros(len(series), dtype=bool)
    good_rows[has] = good[codes[has]]
    changed = np.zeros(len(series), dtype=bool)
    changed[has] = changed_distinct[codes[has]]
    invalid = ~good_rows & ~missing
    if isinstance(series.dtype, pd.CategoricalDtype) and good.all() and not changed.any():
        values = series
    else:
        names = norm.where(good, None).to_numpy(dtype=object)
        taken = np.full(len(series), None, dtype=object)
        taken[has] = names[codes[has]]
        values = pd.Series(taken, index=series.index).astype("str")
    return Checked(values, {"missing_type": missing, "invalid_type": invalid}), changed


def parse_timestamps(series: pd.Series, now: datetime | None = None) -> Checked:
    """ISO 8601 text (naive = UTC), UNIX seconds or datetimes, to aware UTC.

    Text is read as ISO 8601 first (as ``datetime.fromisoformat`` in the schema), then
    as UNIX seconds. Problems: missing, unparseable, before 1990 and more than
    MAX_CLOCK_SKEW ahead of ``now`` (the clock by default), as in
    :class:`recsdk.schemas.Timestamp`.
    """
    now_ts = pd.Timestamp(now or datetime.now(UTC))
    now_ts = now_ts.tz_localize("UTC") if now_ts.tzinfo is None else now_ts.tz_convert("UTC")
    limit = now_ts + MAX_CLOCK_SKEW
    n = len(series)
    if isinstance(series.dtype, pd.CategoricalDtype):
        series = series.astype(object)
    missing = _missing(series)
    seconds = np.full(n, np.nan)
    unparseable = np.zeros(n, dtype=bool)
    if pd.api.types.is_datetime64_any_dtype(series):
        ts = series.dt.tz_localize("UTC") if series.dt.tz is None else series.dt.tz_convert(
            "UTC")
        ts = ts.astype(TIMESTAMP_DTYPE)
    elif pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        seconds = series.to_numpy(dtype=float, na_value=np.nan)
        unparseable = ~missing & ~np.isfinite(seconds)
        ts = pd.Series(pd.NaT, index=series.index, dtype=TIMESTAMP_DTYPE)
    else:
        ts = pd.Series(pd.NaT, index=series.index, dtype=TIMESTAMP_DTYPE)
        obj = series.astype(object)
        if series.dtype == "str":
            kind = np.where(missing, "", "str")
        else:
            kind = obj.map(_kind).to_numpy(dtype=object, copy=True)
            kind[missing] = ""
        text = kind == "str"
        if text.any():
            _parse_text(obj, text, ts, seconds)
        number = kind == "number"
        if number.any():
            seconds[number] = obj[number].astype(float).to_numpy()
        moment = kind == "datetime"
        if moment.any():
            ts.loc[moment] = [_utc(v) for v in obj[moment]]
        unparseable = ~missing & ts.isna().to_numpy() & ~np.isfinite(seconds)
    is_number = np.isfinite(seconds)
    past = is_number & (seconds < MIN_UNIX_SECONDS)
    future = is_number & (seconds > limit.timestamp())
    in_range = is_number & ~past & ~future
    if in_range.any():
        micro = np.round(seconds[in_range] * 1e6).astype("int64")
        ts.loc[in_range] = pd.to_datetime(micro, unit="us", utc=True).astype(TIMESTAMP_DTYPE)
    parsed = ~ts.isna().to_numpy() & ~is_number
    past = past | (parsed & (ts < pd.Timestamp(MIN_TIMESTAMP)).to_numpy(dtype=bool))
    future = future | (parsed & (ts > limit).to_numpy(dtype=bool))
    return Checked(ts, {"missing_timestamp": missing, "unparseable_timestamp": unparseable,
                        "timestamp_before_1990": past, "timestamp_in_future": future})


def _parse_text(obj: pd.Series, text: np.ndarray, ts: pd.Series, seconds: np.ndarray) -> None:
    """Fill ``ts`` (ISO 8601) or ``seconds`` (UNIX) for the ``text`` rows, in place.

    ISO 8601 wins where both readings work (``20240101`` is a date, not 1970), as
    with ``datetime.fromisoformat``; the likelier reading, judged by the first row,
    is tried on every row first, the other one only on the rows that failed.
    """
    def iso(rows: np.ndarray) -> None:
        parsed = pd.to_datetime(obj[rows], format="ISO8601", utc=True, errors="coerce")
        ts.loc[rows] = parsed.astype(TIMESTAMP_DTYPE)

    def unix(rows: np.ndarray) -> None:
        seconds[rows] = _to_float(obj[rows])

    first = obj[text].iloc[0]
    if _looks_numeric(first):
        unix(text)
        retry = text & (~np.isfinite(seconds) | (seconds < MIN_UNIX_SECONDS))
        if retry.any():
            iso(retry)
            seconds[retry & ts.notna().to_numpy()] = np.nan
    else:
        iso(text)
        failed = text & ts.isna().to_numpy()
        if failed.any():
            unix(failed)


def _to_float(values: pd.Series) -> np.ndarray:
    """Numbers from text; NaN where a text is not one (fast path when all are)."""
    try:
        return np.asarray(values.to_numpy(dtype=object), dtype=float)
    except (TypeError, ValueError):
        return pd.to_numeric(values, errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def _looks_numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _kind(value: object) -> str:
    """How a Python value (JSON lines keep types) can be read as a timestamp."""
    if isinstance(value, str):
        return "str"
    if isinstance(value, bool | np.bool_):
        return "other"
    if isinstance(value, int | float | np.integer | np.floating):
        return "number"
    if isinstance(value, datetime):
        return "datetime"
    return "other"


def _utc(value: datetime) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def check_values(series: pd.Series, types: pd.Series) -> Checked:
    """Optional finite numbers; a rating must have one (EventSchema's rule)."""
    missing = _missing(series)
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        numbers = series.astype(float)
    elif series.dtype == "str":
        numbers = pd.Series(_to_float(series.where(~missing, None)), index=series.index)
    else:
        obj = series.astype(object).where(~missing, None)
        bools = obj.map(lambda v: isinstance(v, bool | np.bool_)).to_numpy(dtype=bool)
        numbers = pd.to_numeric(obj.where(~bools, None), errors="coerce").astype(float)
        numbers[bools] = np.nan
    arr = numbers.to_numpy(dtype=float, na_value=np.nan)
    invalid = ~missing & ~np.isfinite(arr)
    arr = np.where(invalid | missing, np.nan, arr)
    rating = types.astype(object).eq("rating").to_numpy()
    return Checked(pd.Series(arr, index=series.index),
                   {"invalid_value": invalid, "rating_without_value": rating & np.isnan(arr)
                    & ~invalid})


def check_context(series: pd.Series) -> Checked:
    """Context: a dict or nothing, like EventSchema's ``context``."""
    obj = series.astype(object)
    empty = obj.map(lambda v: v is None or (isinstance(v, float) and math.isnan(v)))
    ok = obj.map(lambda v: isinstance(v, dict) and all(isinstance(k, str) for k in v))
    invalid = ~(ok | empty).to_numpy(dtype=bool)
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
