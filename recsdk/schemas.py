"""marshmallow schemas for everything that enters recsdk, from Python or over HTTP.

One definition serves the Python API, the REST blueprint and the OpenAPI document.
Unknown fields are rejected, so a misspelled field name is an error, not lost data.
Every field's rule lives in :mod:`recsdk.rules`, shared with the bulk fast path below
and the column-wise checks of file imports, so all three accept the same values.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from recsdk import rules
from recsdk.rules import (  # re-exported: callers import the limits from here
    EVENT_TYPE_PATTERN as EVENT_TYPE_PATTERN,
)
from recsdk.rules import (
    ID_LENGTH as ID_LENGTH,
)
from recsdk.rules import (
    MAX_CLOCK_SKEW as MAX_CLOCK_SKEW,
)
from recsdk.rules import (
    MAX_EPOCH_SECONDS as MAX_EPOCH_SECONDS,
)
from recsdk.rules import (
    MIN_TIMESTAMP as MIN_TIMESTAMP,
)
from recsdk.rules import RuleError


class RuleField(fields.Field):
    """A field checked and normalised by one rule of :mod:`recsdk.rules`."""

    def rule(self, value: Any) -> Any:
        raise NotImplementedError

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        try:
            return self.rule(value)
        except RuleError as exc:
            raise ValidationError(str(exc)) from exc

    def _serialize(self, value: Any, attr: Any, obj: Any, **kwargs: Any) -> Any:
        return value


class Identifier(RuleField):
    """An id: a non-empty string (whole numbers are accepted and turned into strings)."""

    def rule(self, value: Any) -> str:
        return rules.identifier(value)


class EventType(RuleField):
    """An event type, trimmed and lower-cased."""

    def rule(self, value: Any) -> str:
        return rules.event_type(value)


class Timestamp(RuleField):
    """ISO 8601 text (naive means UTC) or UNIX seconds; always returns aware UTC."""

    def rule(self, value: Any) -> datetime:
        return rules.timestamp(value)

    def _serialize(self, value: Any, attr: Any, obj: Any, **kwargs: Any) -> Any:
        return None if value is None else value.isoformat()


class Number(RuleField):
    """A finite number (text that is a plain decimal number counts)."""

    def rule(self, value: Any) -> float:
        return rules.number(value)


class Text(RuleField):
    """Text of at most ``max_length`` characters, without NUL or unpaired surrogates."""

    def __init__(self, max_length: int, *, min_length: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_length = max_length
        self.min_length = min_length

    def rule(self, value: Any) -> str:
        out = rules.text(value, "text", self.max_length)
        if len(out) < self.min_length:
            raise RuleError(f"Text must have at least {self.min_length} character(s).")
        return out


class JsonObject(RuleField):
    """A JSON object of bounded depth whose keys are text (``context``, ``attributes``)."""

    def rule(self, value: Any) -> dict[str, Any]:
        return rules.json_object(value, self.name or "object")


class ItemAttributes(JsonObject):
    """Item attributes: a JSON object whose reserved keys (``group_id``) are typed."""

    def rule(self, value: Any) -> dict[str, Any]:
        return rules.item_attributes(value)


class EventSchema(Schema):
    """A behaviour event. ``timestamp`` defaults to the time it is received."""

    class Meta:
        unknown = RAISE

    user_id = Identifier(required=True)
    item_id = Identifier(required=True)
    type = EventType(required=True)
    timestamp = Timestamp(load_default=None, allow_none=True)
    session_id = Identifier(load_default=None, allow_none=True)
    value = Number(load_default=None, allow_none=True)
    event_id = Identifier(load_default=None, allow_none=True)
    context = JsonObject(load_default=None, allow_none=True)

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
    attributes = ItemAttributes()


class UserSchema(Schema):
    class Meta:
        unknown = RAISE

    id = Identifier(required=True)
    attributes = JsonObject(load_default=dict)


class FeedbackSchema(Schema):
    """A reaction to a served list, credited through its ``request_id``."""

    class Meta:
        unknown = RAISE

    request_id = Text(64, min_length=1, required=True)
    item_id = Identifier(required=True)
    type = EventType(required=True)
    user_id = Identifier(load_default=None, allow_none=True)
    value = Number(load_default=None, allow_none=True)
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


def _fast_event(row: Any, now: datetime, types: dict[str, str]) -> dict[str, Any] | None:
    """The row as :class:`EventSchema` loads it, or None when only the schema may judge.

    The same rules of :mod:`recsdk.rules`, called directly instead of through
    marshmallow; a row they refuse is left to the schema, so error messages are the
    schema's. ``types`` caches the normalised form of each type text seen.
    ``tests/core/test_validation_property.py`` proves the two agree.
    """
    if type(row) is not dict or not row.keys() <= _EVENT_FIELDS:
        return None
    try:
        kind = row["type"]
        name = types.get(kind) if type(kind) is str else None
        if name is None:
            name = types[kind] = rules.event_type(kind)
        value = row.get("value")
        if value is not None:
            value = rules.number(value)
        elif name == "rating":
            return None
        ts = row.get("timestamp")
        session = row.get("session_id")
        event = row.get("event_id")
        context = row.get("context")
        return {
            "user_id": rules.identifier(row["user_id"]),
            "item_id": rules.identifier(row["item_id"]),
            "type": name,
            "timestamp": None if ts is None else rules.timestamp(ts, now),
            "session_id": None if session is None else rules.identifier(session),
            "value": value,
            "event_id": None if event is None else rules.identifier(event),
            "context": None if context is None else rules.json_object(context, "context"),
        }
    except (KeyError, RuleError):
        return None


def load_events(rows: Any) -> list[dict[str, Any]]:
    """Validate a batch of events exactly as :class:`EventSchema` does, but fast.

    Rows go through the rules directly (several times faster than marshmallow for
    bulk ingestion); the first row they refuse sends the whole batch through the
    schema, which then names every problem.
    """
    if isinstance(rows, list):
        now = rules.clock()
        types: dict[str, str] = {}
        out = []
        for row in rows:
            loaded = _fast_event(row, now, types)
            if loaded is None:
                break
            out.append(loaded)
        else:
            return out
    return load_many(EventSchema(), rows, "events")
