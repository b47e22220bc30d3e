"""One set of event rules: the schema, the fast path and the importer's column checks agree.

Hypothesis generates event rows, valid and invalid (wrong types, huge integers, NaN and
infinity, NUL characters, unpaired surrogates, odd timestamps, long ids, deep context),
and every way in must accept the same rows with the same normalised values, or refuse
them naming the same fields. The clock is pinned so that "a day ahead" is one moment.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from unittest.mock import patch

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError

from recsdk import rules
from recsdk.data.validation import check_events
from recsdk.errors import ValidationFailed
from recsdk.rules import MAX_JSON_DEPTH, RuleError
from recsdk.schemas import EventSchema, _fast_event, load_events

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
FIELD_RULES = {
    "user_id": rules.identifier, "item_id": rules.identifier, "type": rules.event_type,
    "timestamp": lambda v: rules.timestamp(v, NOW), "session_id": rules.identifier,
    "value": rules.number, "event_id": rules.identifier,
    "context": lambda v: rules.json_object(v, "context"),
}
REQUIRED = ("user_id", "item_id", "type")
ODD_CHARS = st.sampled_from(["\x00", "\ud800", "\udfff", " ", "\n", "A", "é", "İ", "7"])
TEXTS = st.text(alphabet=st.one_of(st.characters(), ODD_CHARS), max_size=12)
HUGE = st.sampled_from([10**400, -(10**400), 2**63, 2**53 + 1, 10**254, 10**255])
FLOATS = st.floats(allow_nan=True, allow_infinity=True)
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), HUGE, FLOATS, TEXTS)
IDS = st.one_of(
    st.text(alphabet="abc-_.", min_size=1, max_size=8), st.integers(-10**6, 10**9),
    st.floats(-1e6, 1e6).map(float.__floor__).map(float),
    SCALARS, st.text(alphabet="x", min_size=250, max_size=260),
    st.lists(st.integers(), max_size=2), st.dictionaries(TEXTS, st.integers(), max_size=1))
TYPES = st.one_of(
    st.sampled_from(["view", "purchase", "rating", "Purchase", " Rating ", "ADD_TO_CART",
                     "custom:wish-list", "", "9lives", "a" * 64, "a" * 65, "view\n", "İ",
                     "vi\x00ew"]), TEXTS, st.integers(), st.none())
ZONES = st.sampled_from([UTC, timezone(timedelta(hours=1)), timezone(timedelta(hours=-1)),
                         timezone(timedelta(hours=14)), timezone(timedelta(hours=-12)),
                         None])
MOMENTS = st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59),
                       timezones=ZONES)
RECENT = st.datetimes(min_value=datetime(1989, 12, 30), max_value=datetime(2026, 6, 3),
                      timezones=ZONES)
TIMESTAMPS = st.one_of(
    st.none(), RECENT, RECENT.map(datetime.isoformat), MOMENTS.map(datetime.isoformat),
    RECENT.map(lambda d: d.isoformat(sep=" ", timespec="milliseconds")),
    RECENT.map(lambda d: d.strftime("%Y%m%dT%H%M%S")),
    st.sampled_from(["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00",
                     "2024-01-01T00:00:00Z", " 2024-01-01T00:00:00Z ", "2024-01-01Z",
                     "20240101", "2024-W01-1", "1700000000", "1700000000.25", "1e9", "1_700",
                     "nan", "inf", "", "soon", "2024-01-01T24:00:00", "2024-01-01\x00"]),
    st.floats(6e8, 2e9), st.integers(6 * 10**8, 2 * 10**9), FLOATS, st.integers(), HUGE,
    st.booleans())
VALUES = st.one_of(
    st.none(), st.floats(-10, 10), st.integers(-5, 5), FLOATS, HUGE, st.booleans(),
    st.sampled_from(["3", " 4.5 ", "1e309", "1_000", "nan", "-inf", "x", "", "0x10"]),
    st.lists(st.integers(), max_size=1))
JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), HUGE, FLOATS, TEXTS),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(TEXTS, inner, max_size=3)),
    max_leaves=8)


def nested(depth: int) -> dict[str, Any]:
    doc: dict[str, Any] = {"leaf": 1}
    for _ in range(depth - 1):
        doc = {"a": doc}
    return doc


CONTEXTS = st.one_of(
    st.none(), st.dictionaries(TEXTS, JSON, max_size=3),
    st.integers(MAX_JSON_DEPTH - 1, MAX_JSON_DEPTH + 1).map(nested),
    st.dictionaries(st.integers(), st.integers(), min_size=1, max_size=1),
    st.lists(st.integers(), max_size=2), TEXTS)
FIELDS = {"user_id": IDS, "item_id": IDS, "type": TYPES, "timestamp": TIMESTAMPS,
          "session_id": IDS, "value": VALUES, "event_id": IDS, "context": CONTEXTS}
GOOD_IDS = st.one_of(st.text(alphabet="abc-_.", min_size=1, max_size=8),
                     st.integers(-10**6, 10**9), st.integers(0, 99).map(float))
#: Mostly plain values, so that accepted rows and their normalised values are compared.
GOOD = {
    "user_id": GOOD_IDS, "item_id": GOOD_IDS, "session_id": GOOD_IDS, "event_id": GOOD_IDS,
    "type": st.sampled_from(["view", "purchase", "rating", "Purchase", " Rating ",
                             "ADD_TO_CART", "custom:wish-list"]),
    "timestamp": st.one_of(st.none(), RECENT, RECENT.map(datetime.isoformat),
                           st.floats(6.4e8, 1.78e9), st.integers(6 * 10**8, 17 * 10**8),
                           st.integers(6 * 10**8, 17 * 10**8).map(str)),
    "value": st.one_of(st.none(), st.floats(-10, 10), st.integers(-5, 5),
                       st.sampled_from(["3", " 4.5 "])),
    "context": st.one_of(st.none(), st.dictionaries(
        st.text(max_size=5), st.one_of(st.integers(-9, 9), st.text(max_size=5),
                                       st.lists(st.booleans(), max_size=2)), max_size=3)),
}


@st.composite
def event_rows(draw: st.DrawFn) -> dict[str, Any]:
    row = {}
    for key, values in FIELDS.items():
        if key in REQUIRED or draw(st.booleans()):
            row[key] = draw(GOOD[key] if draw(st.integers(0, 9)) else values)
    if draw(st.integers(0, 19)) == 0:
        row.pop(draw(st.sampled_from(REQUIRED)), None)
    if draw(st.integers(0, 19)) == 0:
        row["colour"] = "red"
    return row


def expected_errors(row: dict[str, Any], *, rating_check_always: bool = False) -> set[str]:
    """The fields a row breaks, rule by rule (the schema's rating check runs last)."""
    errors = {key for key in row if key not in FIELD_RULES}
    for key, rule in FIELD_RULES.items():
        if key not in row or row[key] is None:
            if key in REQUIRED:
                errors.add(key)
            continue
        try:
            rule(row[key])
        except RuleError:
            errors.add(key)
    if (not errors or rating_check_always) and "value" not in errors \
            and _type_of(row) == "rating" and row.get("value") is None:
        errors.add("value")
    return errors


def _type_of(row: dict[str, Any]) -> str | None:
    try:
        return rules.event_type(row.get("type"))
    except RuleError:
        return None


def schema_load(row: dict[str, Any]) -> tuple[dict[str, Any] | None, set[str]]:
    try:
        return EventSchema().load(row), set()
    except ValidationError as exc:
        messages = exc.messages
        assert isinstance(messages, dict)
        return None, set(messages)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(event_rows(), min_size=1, max_size=12))
def test_schema_fast_path_and_column_checks_agree(rows: list[dict[str, Any]]) -> None:
    with patch.object(rules, "clock", lambda: NOW):
        for row in rows:
            loaded, failed = schema_load(row)
            assert failed == expected_errors(row), row
            fast = _fast_event(row, NOW, {})
            if loaded is None:
                assert fast is None, row  # the fast path never accepts a refused row
            else:
                assert fast == loaded, row  # same rows, same normalised values
        column_rows = [r for r in rows if set(r) <= set(FIELD_RULES)]
        if column_rows:
            assert_column_checks_agree(column_rows)


def assert_column_checks_agree(rows: list[dict[str, Any]]) -> None:
    """The importer's checks on a frame of ``rows``, against the rules row by row.

    In a table an empty cell is an absent value: NaN always (pandas cannot tell them
    apart), empty text where the field is a value or a time (a CSV's empty field). Files
    must carry a timestamp, so an absent one is a problem of its own
    (``missing_timestamp``), left out of the comparison.
    """
    frame = pd.DataFrame(rows, columns=list(FIELD_RULES), dtype=object)
    out, problems, _ = check_events(frame, NOW)
    for pos, row in enumerate(rows):
        absent_nan = {k: v for k, v in row.items() if not _is_empty_cell(k, v)}
        want = expected_errors(absent_nan, rating_check_always=True)
        got = {_field(rule) for rule, mask in problems.items()
               if mask[pos] and rule != "missing_timestamp"}
        assert got == want, (row, got, want)
        if want:
            continue
        loaded = EventSchema().load(absent_nan)
        for key in ("user_id", "item_id", "type", "session_id", "event_id"):
            value = out[key].iloc[pos]
            assert (None if pd.isna(value) else value) == loaded[key], (row, key)
        stamp = out["timestamp"].iloc[pos]
        assert (None if pd.isna(stamp) else stamp.to_pydatetime()) == loaded["timestamp"], row
        value = out["value"].iloc[pos]
        assert (None if np.isnan(value) else value) == loaded["value"], row


def _is_empty_cell(key: str, value: object) -> bool:
    if isinstance(value, float) and math.isnan(value):
        return True
    return value == "" and key in ("value", "timestamp")


def _field(rule: str) -> str:
    if rule == "rating_without_value":
        return "value"
    return rule.split("_", 1)[1] if rule.startswith(("missing_", "invalid_")) else "timestamp"


@pytest.mark.parametrize(("given_type", "stored"), [
    ("Purchase", "purchase"), (" add_to_cart ", "add_to_cart"), ("RATING", "rating")])
def test_type_normalisation_is_the_same_on_every_path(given_type: str, stored: str) -> None:
    row = {"user_id": "u", "item_id": "i", "type": given_type, "value": 5}
    assert load_events([row])[0]["type"] == stored
    assert EventSchema().load(row)["type"] == stored
    out, _, changed = check_events(pd.DataFrame([row], dtype=object), NOW)
    assert out["type"].iloc[0] == stored and changed[0]


def test_one_irregular_row_sends_the_batch_to_the_schema() -> None:
    good = {"user_id": "u", "item_id": "i", "type": "view"}
    rows = [good, {**good, "colour": "red"}, good]
    with pytest.raises(ValidationFailed) as err:
        load_events(rows)
    assert err.value.messages == {1: {"colour": ["Unknown field."]}}
    with pytest.raises(ValidationFailed) as err:
        load_events([good, good, {**good, "type": "rating"}])
    assert err.value.messages == {2: {"value": ["A rating event needs a numeric value."]}}
