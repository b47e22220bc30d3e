"""What recsdk accepts: one function per kind of input value, shared by every way in.

The marshmallow schemas (REST and the Python API), the fast path of
:func:`recsdk.schemas.load_events` and the column-wise checks of file imports
(:mod:`recsdk.data.validation`) all call these functions, so a value is accepted, and
normalised, the same way whichever way it comes in. Each rule takes one Python value
and returns the normalised value, or raises :class:`RuleError` with the message the
user sees. The limits are what the storage and the algorithms can hold; docs/api.md
lists them.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta

import numpy as np

from recsdk.storage.models import ID_LENGTH

#: Events dated further ahead than this are refused as impossible.
MAX_CLOCK_SKEW = timedelta(days=1)
#: Earliest accepted event time (before e-commerce, so certainly a unit mistake).
MIN_TIMESTAMP = datetime(1990, 1, 1, tzinfo=UTC)
MIN_UNIX_SECONDS = MIN_TIMESTAMP.timestamp()
#: UNIX seconds beyond this (year 5138) are surely milliseconds or microseconds.
MAX_EPOCH_SECONDS = 1e11
EVENT_TYPE_PATTERN = re.compile(r"^[a-z][a-z0-9_:\-]{0,63}\Z")  # \Z: no trailing newline
#: Deepest nesting of ``context`` and ``attributes``; the object itself is level 1.
MAX_JSON_DEPTH = 16
#: Longest key or text value inside ``context`` and ``attributes``, in characters.
MAX_JSON_TEXT = 10_000
#: Whole numbers inside ``context`` and ``attributes`` fit in a signed 64-bit integer.
JSON_INT_MIN, JSON_INT_MAX = -(2**63), 2**63 - 1
#: Item text limits, in characters (longer titles blow up text features at training).
MAX_TITLE_LENGTH = 1_000
MAX_DESCRIPTION_LENGTH = 50_000
MAX_URL_LENGTH = 2_048
MAX_TAG_LENGTH = 128
MAX_TAGS = 100
#: ``stock`` is a 32-bit integer column.
MAX_STOCK = 2**31 - 1
#: Category chains (root to leaf) longer than this are refused.
MAX_CATEGORY_DEPTH = 32
#: Item attributes the host reads itself, and the JSON types each may have.
RESERVED_ITEM_ATTRIBUTES: dict[str, tuple[type, ...]] = {"group_id": (str, int, float)}
#: Floats stand for whole-number ids only below this (beyond it they are not exact).
_EXACT_FLOAT = 2**53
#: Ids written as integers of more bits than this have more than ID_LENGTH digits.
_ID_INT_BITS = 850
_BASIC_DATE = re.compile(r"\d{8}\Z")
_NUMBER_TEXT = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\Z")

ID_MESSAGE = f"Not a valid id: give a non-empty string of at most {ID_LENGTH} characters."
TYPE_MESSAGE = ("Event type must be a letter then letters, digits, '_', ':' or '-' (at most "
                "64; trimmed and lower-cased), e.g. view, click, add_to_cart, purchase, "
                "rating.")
TIMESTAMP_MESSAGE = "Not a valid timestamp: give ISO 8601 text or UNIX seconds."
NUMBER_MESSAGE = "Not a finite number."


class RuleError(ValueError):
    """A value breaks a rule; ``kind`` tells rules apart (``past``, ``future``, ...)."""

    def __init__(self, message: str, kind: str = "invalid") -> None:
        super().__init__(message)
        self.kind = kind


def clock() -> datetime:
    """The time "now" for timestamp rules (tests replace it to pin the clock)."""
    return datetime.now(UTC)


def check_text(text: str, what: str) -> str:
    """``text`` unless it holds a NUL character or an unpaired surrogate (no storage can)."""
    if "\x00" in text:
        raise RuleError(f"{what} contains a NUL character (\\u0000), which cannot be stored.",
                        "nul")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise RuleError(f"{what} contains an unpaired surrogate ({exc.object[exc.start]!a}"
                            "): not valid Unicode.", "surrogate") from exc
    return text


def text(value: object, what: str, max_length: int) -> str:
    """Text of at most ``max_length`` characters, storable as is."""
    if not isinstance(value, str):
        raise RuleError(f"Not valid text: {what} must be a string.")
    if len(value) > max_length:
        raise RuleError(f"{what} is longer than {max_length} characters.", "too_long")
    return check_text(value, what)


def identifier(value: object) -> str:
    """An id as text: a string, or a whole number (``7``, ``7.0``) turned into text."""
    if type(value) is str:
        out = value
    elif isinstance(value, bool):
        raise RuleError(ID_MESSAGE)
    elif isinstance(value, numbers.Integral):
        number = int(value)
        if number.bit_length() > _ID_INT_BITS:  # str() of it would be slow, and too long
            raise RuleError(ID_MESSAGE, "too_long")
        out = str(number)
    elif isinstance(value, float) and value.is_integer() and abs(value) < _EXACT_FLOAT:
        out = str(int(value))
    else:
        raise RuleError(ID_MESSAGE)
    if not out or len(out) > ID_LENGTH:
        raise RuleError(ID_MESSAGE, "too_long" if out else "invalid")
    return check_text(out, "Not a valid id: it")


def event_type(value: object) -> str:
    """An event type, trimmed and lower-cased (``" Purchase"`` is ``purchase``)."""
    if not isinstance(value, str):
        raise RuleError(TYPE_MESSAGE)
    name = value.strip().lower()
    if not EVENT_TYPE_PATTERN.match(name):
        raise RuleError(TYPE_MESSAGE)
    return name


def timestamp(value: object, now: datetime | None = None) -> datetime:
    """Aware UTC time from ISO 8601 text (naive means UTC), UNIX seconds or a datetime.

    Text is trimmed; text that is a decimal number is UNIX seconds (``"1700000000"``,
    as CSV files write them) except eight digits, an ISO date (``"20240101"``); other
    text is ISO 8601 as ``datetime.fromisoformat`` reads it.
    Times before 1990 or more than :data:`MAX_CLOCK_SKEW` after ``now`` are refused.
    """
    if isinstance(value, str):
        stripped = value.strip()
        iso_date = stripped[4:5] == "-" == stripped[7:8]  # YYYY-MM-: never a number
        if not iso_date and _NUMBER_TEXT.match(stripped) and not _BASIC_DATE.match(stripped):
            value = float(stripped)
        else:
            try:
                value = datetime.fromisoformat(stripped)
            except ValueError:
                raise RuleError(TIMESTAMP_MESSAGE) from None
    if isinstance(value, datetime):
        if type(value) is not datetime and value != value:  # pandas' NaT equals nothing
            raise RuleError(TIMESTAMP_MESSAGE)
        return _in_range(_as_utc(value), now)
    if type(value) is not float and (isinstance(value, bool)
                                     or not isinstance(value, numbers.Real)):
        raise RuleError(TIMESTAMP_MESSAGE)
    if not isinstance(value, numbers.Integral) and not math.isfinite(value):
        raise RuleError(TIMESTAMP_MESSAGE)
    if value < MIN_UNIX_SECONDS:
        raise RuleError("Timestamp is before 1990-01-01.", "past")
    if value > MAX_EPOCH_SECONDS:
        raise RuleError("Timestamp is too large for UNIX seconds; milliseconds given as "
                        "seconds? Divide by 1000.", "future")
    return _in_range(datetime.fromtimestamp(float(value), UTC), now)


def _as_utc(moment: datetime) -> datetime:
    if moment.tzinfo is UTC:
        return moment
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except (OverflowError, ValueError) as exc:
        raise RuleError("Not a valid timestamp: out of range once converted to UTC.") from exc


def _in_range(moment: datetime, now: datetime | None) -> datetime:
    if moment < MIN_TIMESTAMP:
        raise RuleError("Timestamp is before 1990-01-01.", "past")
    if moment > (now or clock()) + MAX_CLOCK_SKEW:
        raise RuleError("Timestamp is more than a day in the future.", "future")
    return moment


def number(value: object) -> float:
    """A finite number; text that is a plain decimal number (``"4.5"``) counts."""
    kind = type(value)
    if kind is float:
        out = value
    elif kind is str:
        stripped = value.strip()  # type: ignore[union-attr]
        if not _NUMBER_TEXT.match(stripped):
            raise RuleError(NUMBER_MESSAGE)
        out = float(stripped)
    elif isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise RuleError(NUMBER_MESSAGE)
    else:
        try:
            out = float(value)
        except OverflowError:
            raise RuleError(NUMBER_MESSAGE) from None
    if not math.isfinite(out):  # type: ignore[arg-type]
        raise RuleError(NUMBER_MESSAGE)
    return out  # type: ignore[return-value]


def json_object(value: object, what: str) -> dict[str, object]:
    """A JSON object that every store can hold: text keys, JSON values, bounded depth.

    Refused: nesting deeper than :data:`MAX_JSON_DEPTH`, keys or texts longer than
    :data:`MAX_JSON_TEXT` or holding NUL or unpaired surrogates, non-finite numbers,
    whole numbers beyond 64 bits, and anything that is not a JSON value. Walks the
    document without recursion, so any depth is refused cheaply.
    """
    if not isinstance(value, dict):
        raise RuleError(f"{what} must be an object (a dict with text keys).")
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise RuleError(f"{what} is nested deeper than {MAX_JSON_DEPTH} levels.",
                            "too_deep")
        if isinstance(node, dict):
            for key in node:
                if type(key) is not str:
                    raise RuleError(f"{what} keys must be text.")
                _json_text(key, what)
            children = node.values()
        else:
            children = node  # type: ignore[assignment]
        for child in children:
            if isinstance(child, dict | list | tuple):
                stack.append((child, depth + 1))
            else:
                _json_scalar(child, what)
    return value


def _json_text(value: str, what: str) -> None:
    if len(value) > MAX_JSON_TEXT:
        raise RuleError(f"{what} holds a text longer than {MAX_JSON_TEXT} characters.",
                        "too_long")
    check_text(value, what)


def _json_scalar(value: object, what: str) -> None:
    kind = type(value)
    if kind is str:
        _json_text(value, what)  # type: ignore[arg-type]
    elif value is None or kind is bool or kind is np.bool_:
        return
    elif kind is float:
        if not math.isfinite(value):  # type: ignore[arg-type]
            raise RuleError(f"{what} holds a number that is not finite (NaN or Infinity).")
    elif isinstance(value, numbers.Integral):
        if not JSON_INT_MIN <= int(value) <= JSON_INT_MAX:
            raise RuleError(f"{what} holds a whole number beyond 64 bits.")
    elif isinstance(value, numbers.Real):
        if not math.isfinite(value):
            raise RuleError(f"{what} holds a number that is not finite (NaN or Infinity).")
    else:
        raise RuleError(f"{what} holds a {type(value).__name__}: only JSON values (objects, "
                        "arrays, text, numbers, true, false, null) may be stored.")


def item_attributes(value: object) -> dict[str, object]:
    """Item attributes: a JSON object whose reserved keys have the types the host reads."""
    attributes = json_object(value, "attributes")
    for key, types in RESERVED_ITEM_ATTRIBUTES.items():
        got = attributes.get(key)
        if got is None:
            continue
        if isinstance(got, bool) or not isinstance(got, types) or (
                isinstance(got, float) and not math.isfinite(got)):
            raise RuleError(f"attributes.{key} must be a string or a number (it groups "
                            f"items), not {type(got).__name__}.")
    return attributes


def category_problems(parents: Mapping[str, str | None], changed: Iterable[str]
                      ) -> dict[str, str]:
    """Why categories in ``changed`` cannot stand in the tree ``parents`` (id -> parent).

    A category is refused when following parents from it comes back to it (a cycle,
    however many requests built it), or when it makes some chain from a category up
    to its root longer than :data:`MAX_CATEGORY_DEPTH` (its own, or one of a category
    below it). Walks iteratively: any depth is checked without recursion.
    """
    changed = set(changed)
    depth: dict[str, float] = {}  # levels from the root; inf in or under a cycle
    for start in parents:
        path: list[str] = []
        on_path: set[str] = set()
        node: str | None = start
        while node is not None and node not in depth and node not in on_path:
            on_path.add(node)
            path.append(node)
            node = parents.get(node)
        if node is not None and node in on_path:  # a cycle: it and all below it
            base = math.inf
        else:
            base = 0.0 if node is None else depth[node]
        for item in reversed(path):
            base = base + 1
            depth[item] = base
    problems: dict[str, str] = {}
    for node, levels in depth.items():
        if levels <= MAX_CATEGORY_DEPTH:
            continue
        culprit = _first_changed(node, parents, changed)
        if culprit is None or culprit in problems:
            continue
        if math.isinf(levels):
            problems[culprit] = (f"Category cycle: following parent_id from {culprit!r} "
                                 + ("comes back to it." if _on_cycle(culprit, parents)
                                    else "runs into a cycle."))
        else:
            problems[culprit] = (f"Category chain too deep: {node!r} would be {int(levels)} "
                                 f"levels below the root; at most {MAX_CATEGORY_DEPTH}.")
    return problems


def _first_changed(node: str, parents: Mapping[str, str | None], changed: set[str]
                   ) -> str | None:
    """The first category in ``changed`` on the way up from ``node`` (itself included)."""
    seen: set[str] = set()
    current: str | None = node
    while current is not None and current not in seen:
        if current in changed:
            return current
        seen.add(current)
        current = parents.get(current)
    return None


def _on_cycle(node: str, parents: Mapping[str, str | None]) -> bool:
    seen: set[str] = set()
    current = parents.get(node)
    while current is not None and current not in seen:
        if current == node:
            return True
        seen.add(current)
        current = parents.get(current)
    return False
