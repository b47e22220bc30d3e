"""marshmallow schemas for everything that enters recsdk, from Python or over HTTP.

One definition serves the Python API, the REST blueprint and the OpenAPI document.
Unknown fields are rejected, so a misspelled field name is an error, not lost data.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from recsdk.storage.models import ID_LENGTH

#: Events dated further ahead than this are refused as impossible.
MAX_CLOCK_SKEW = timedelta(days=1)
#: Earliest accepted event time (before e-commerce, so certainly a unit mistake).
MIN_TIMESTAMP = datetime(1990, 1, 1, tzinfo=UTC)
#: UNIX seconds beyond this (year 5138) are surely milliseconds or microseconds.
MAX_EPOCH_SECONDS = 1e11
EVENT_TYPE_PATTERN = re.compile(r"^[a-z][a-z0-9_:\-]{0,63}\Z")  # \Z: no trailing newline


class Identifier(fields.Field):
    """An id: a non-empty string (integers are accepted and turned into strings)."""

    default_error_messages = {  # noqa: RUF012 - marshmallow's API
        "invalid": "Not a valid id: give a non-empty string of at most 255 characters.",
    }

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> str:
        if isinstance(value, bool):
            raise self.make_error("invalid")
        if isinstance(value, int):
            value = str(value)
        if not isinstance(value, str) or not value or len(value) > ID_LENGTH:
            raise self.make_error("invalid")
        return value

    def _serialize(self, value: Any, attr: Any, obj: Any, **kwargs: Any) -> Any:
        return value


class Timestamp(fields.Field):
    """ISO 8601 text (naive means UTC) or UNIX seconds; always returns aware UTC."""

    default_error_messages = {  # noqa: RUF012 - marshmallow's API
        "invalid": "Not a valid timestamp: give ISO 8601 text or UNIX seconds.",
        "future": "Timestamp is more than a day in the future.",
        "past": "Timestamp is before 1990-01-01.",
        "milliseconds": "Timestamp is too large for UNIX seconds; milliseconds given as "
        "seconds? Divide by 1000.",
    }

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> datetime:
        try:
            if isinstance(value, datetime):
                ts = value
            elif isinstance(value, int | float) and not isinstance(value, bool):
                if not math.isfinite(value):
                    raise ValueError
                if value > MAX_EPOCH_SECONDS:
                    raise self.make_error("milliseconds")
                ts = datetime.fromtimestamp(value, UTC)
            elif isinstance(value, str):
                ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
            else:
                raise ValueError
        except (ValueError, OverflowError, OSError) as exc:
            raise self.make_error("invalid") from exc
        ts = ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)
        if ts > datetime.now(UTC) + MAX_CLOCK_SKEW:
            raise self.make_error("future")
        if ts < MIN_TIMESTAMP:
            raise self.make_error("past")
        return ts

    def _serialize(self, value: Any, attr: Any, obj: Any, **kwargs: Any) -> Any:
        return None if value is None else value.isoformat()


class EventSchema(Schema):
    """A behaviour event. ``timestamp`` defaults to the time it is received."""

    class Meta:
        unknown = RAISE

    user_id = Identifier(required=True)
    item_id = Identifier(required=True)
    type = fields.String(
        required=True,
        validate=validate.Regexp(
            EVENT_TYPE_PATTERN,
            error="Event type must be lower-case letters, digits, '_', ':' or '-' "
            "(at most 64), e.g. view, click, add_to_cart, purchase, rating.",
        ),
    )
    timestamp = Timestamp(load_default=None, allow_none=True)
    session_id = Identifier(load_default=None, allow_none=True)
    value = fields.Float(load_default=None, allow_none=True, allow_nan=False)
    event_id = Identifier(load_default=None, allow_none=True)
    context = fields.Dict(keys=fields.String(), load_default=None, allow_none=True)

    @validates_schema
    def _rating_has_value(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data.get("type") == "rating" and data.get("value") is None:
            raise ValidationError("A rating event needs a numeric value.", "value")


class CategorySchema(Schema):
    class Meta:
        unknown = RAISE

    id = Identifier(required=True)
    name = fields.String(load_default=None, validate=validate.Length(max=ID_LENGTH))
    parent_id = Identifier(load_default=None, allow_none=True)


class ItemSchema(Schema):
    """A product upsert; fields left out keep their stored value."""

    class Meta:
        unknown = RAISE

    id = Identifier(required=True)
    title = fields.String()
    description = fields.String()
    category_id = Identifier(allow_none=True)
    tags = fields.List(fields.String(validate=validate.Length(1, 128)))
    price = fields.Float(
        allow_none=True, allow_nan=False,
        validate=validate.Range(min=0, error="Price must not be negative."),
    )
    original_price = fields.Float(
        allow_none=True, allow_nan=False,
        validate=validate.Range(min=0, error="Original price must not be negative."),
    )
    stock = fields.Integer(
        allow_none=True, strict=True,
        validate=validate.Range(min=0, error="Stock must not be negative."),
    )
    active = fields.Boolean()
    image_url = fields.String(allow_none=True)
    attributes = fields.Dict(keys=fields.String())


class UserSchema(Schema):
    class Meta:
        unknown = RAISE

    id = Identifier(required=True)
    attributes = fields.Dict(keys=fields.String(), load_default=dict)


class FeedbackSchema(Schema):
    """A reaction to a served list, credited through its ``request_id``."""

    class Meta:
        unknown = RAISE

    request_id = fields.String(required=True, validate=validate.Length(1, 64))
    item_id = Identifier(required=True)
    type = fields.String(required=True, validate=validate.Regexp(EVENT_TYPE_PATTERN))
    user_id = Identifier(load_default=None, allow_none=True)
    value = fields.Float(load_default=None, allow_none=True, allow_nan=False)
    timestamp = Timestamp(load_default=None, allow_none=True)


def load_many(schema: Schema, rows: Any, what: str) -> list[dict[str, Any]]:
    """Validate a list of rows; raise one error mapping row numbers to field messages."""
    from recsdk.errors import ValidationFailed

    if not isinstance(rows, list):
        raise ValidationFailed({"_schema": [f"Expected a list of {what}."]}, what)
    try:
        return schema.load(rows, many=True)
    except ValidationError as exc:
        raise ValidationFailed(exc.messages, what) from exc


def load_one(schema: Schema, row: Any, what: str) -> dict[str, Any]:
    from recsdk.errors import ValidationFailed

    if not isinstance(row, dict):
        raise ValidationFailed({"_schema": [f"Expected one {what} object."]}, what)
    try:
        return schema.load(row)
    except ValidationError as exc:
        raise ValidationFailed(exc.messages, what) from exc


_EVENT_FIELDS = frozenset(EventSchema().fields)
_OPTIONAL_IDS = ("session_id", "event_id")


def _fast_event(row: Any, now: datetime, types_ok: set[str]) -> dict[str, Any] | None:
    """The row as EventSchema would load it, or None when only the schema may judge.

    Accepts only the plain shapes that ingestion sees in bulk (string or integer ids,
    ISO text or UNIX-second timestamps, numeric values, a dict context); anything
    else, valid or not, is left to the schema, so behaviour and error messages are
    the schema's. ``tests/core/test_fast_validation.py`` checks the two agree.
    """
    if type(row) is not dict or not row.keys() <= _EVENT_FIELDS:
        return None
    out: dict[str, Any] = {}
    for key in ("user_id", "item_id"):
        v = row.get(key)
        if type(v) is int:
            v = str(v)
        elif type(v) is not str or not v or len(v) > ID_LENGTH:
            return None
        out[key] = v
    t = row.get("type")
    if type(t) is not str:
        return None
    if t not in types_ok:
        if not EVENT_TYPE_PATTERN.match(t):
            return None
        types_ok.add(t)
    out["type"] = t
    ts = row.get("timestamp")
    if ts is not None:
        try:
            if type(ts) is str:
                ts = datetime.fromisoformat(ts.replace("Z", "+00:00") if ts[-1:] == "Z" else ts)
            elif type(ts) in (int, float) and math.isfinite(ts):
                ts = datetime.fromtimestamp(ts, UTC)
            else:
                return None
        except (ValueError, OverflowError, OSError):
            return None
        ts = ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)
        if ts > now + MAX_CLOCK_SKEW or ts < MIN_TIMESTAMP:
            return None
    out["timestamp"] = ts
    for key in _OPTIONAL_IDS:
        v = row.get(key)
        if type(v) is int:
            v = str(v)
        elif v is not None and (type(v) is not str or not v or len(v) > ID_LENGTH):
            return None
        out[key] = v
    value = row.get("value")
    if value is not None:
        if type(value) not in (int, float) or not math.isfinite(value):
            return None
        value = float(value)
    elif t == "rating":
        return None
    out["value"] = value
    context = row.get("context")
    if context is not None and (type(context) is not dict
                                or not all(type(k) is str for k in context)):
        return None
    out["context"] = context
    return out


def load_events(rows: Any) -> list[dict[str, Any]]:
    """Validate a batch of events exactly as :class:`EventSchema` does, but fast.

    Plain rows take a tight path (about ten times faster than marshmallow for bulk
    ingestion); the first row it cannot vouch for sends the whole batch through the
    schema, which then names every problem.
    """
    if isinstance(rows, list):
        now = datetime.now(UTC)
        types_ok: set[str] = set()
        out = []
        for row in rows:
            loaded = _fast_event(row, now, types_ok)
            if loaded is None:
                break
            out.append(loaded)
        else:
            return out
    return load_many(EventSchema(), rows, "events")
