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
    """A field checked and normalised by one rule of :mod:`recsdk.rules`.

    ``openapi()`` is what the field accepts in OpenAPI terms; it becomes the field's
    metadata, which apispec copies into the document (the app registers RuleField
    without a type of its own), so the document states the rule's limits.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.metadata = {**self.openapi(), **self.metadata}

    def rule(self, value: Any) -> Any:
        raise NotImplementedError

    def openapi(self) -> dict[str, Any]:
        return {}

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        try:
            return self.rule(value)
        except RuleError as exc:
            raise ValidationError(str(exc)) from exc

    def _serialize(self, value: Any, attr: Any, obj: Any, **kwargs: Any) -> Any:
        return value


_TEXT_NOTE = "no NUL character (\\u0000) and no unpaired surrogate"
_ID_TEXT = {"type": "string", "minLength": 1, "maxLength": ID_LENGTH}


class Identifier(RuleField):
    """An id: a non-empty string (whole numbers are accepted and turned into strings)."""

    def rule(self, value: Any) -> str:
        return rules.identifier(value)

    def openapi(self) -> dict[str, Any]:
        return {"anyOf": [_ID_TEXT, {"type": "integer", "minimum": -(10 ** (ID_LENGTH - 1)) + 1,
                                     "maximum": 10**ID_LENGTH - 1}],
                "description": f"an id: text of 1 to {ID_LENGTH} characters ({_TEXT_NOTE}), "
                               "or a whole number, stored as its decimal text"}


class TextIdentifier(Identifier):
    """An id that only ever arrives as text (query strings and paths)."""

    def openapi(self) -> dict[str, Any]:
        return {**_ID_TEXT, "description": f"an id: 1 to {ID_LENGTH} characters, {_TEXT_NOTE}"}


class EventType(RuleField):
    """An event type, trimmed and lower-cased."""

    def rule(self, value: Any) -> str:
        return rules.event_type(value)

    def openapi(self) -> dict[str, Any]:
        return {"type": "string", "pattern": "^[A-Za-z][A-Za-z0-9_:-]{0,63}$",
                "description": "view, click, add_to_cart, remove_from_cart, purchase, rating, "
                               "review, return or your own; trimmed and lower-cased"}


class Timestamp(RuleField):
    """ISO 8601 text (naive means UTC) or UNIX seconds; always returns aware UTC."""

    def rule(self, value: Any) -> datetime:
        return rules.timestamp(value)

    def _serialize(self, value: Any, attr: Any, obj: Any, **kwargs: Any) -> Any:
        return None if value is None else value.isoformat()

    def openapi(self) -> dict[str, Any]:
        return {"anyOf": [{"type": "string", "format": "date-time"},
                          {"type": "number", "minimum": rules.MIN_UNIX_SECONDS}],
                "description": "ISO 8601 (naive means UTC) or UNIX seconds; from 1990-01-01 "
                               "to one day after the server's clock, after conversion to UTC"}


class Number(RuleField):
    """A finite number (text that is a plain decimal number counts)."""

    def rule(self, value: Any) -> float:
        return rules.number(value)

    def openapi(self) -> dict[str, Any]:
        return {"type": "number", "description": "a finite number (no NaN or infinity)"}


class Text(RuleField):
    """Text of at most ``max_length`` characters, without NUL or unpaired surrogates."""

    def __init__(self, max_length: int, *, min_length: int = 0, **kwargs: Any) -> None:
        self.max_length = max_length
        self.min_length = min_length
        super().__init__(**kwargs)

    def rule(self, value: Any) -> str:
        out = rules.text(value, self.name or "text", self.max_length)
        if len(out) < self.min_length:
            raise RuleError(f"Text must have at least {self.min_length} character(s).")
        return out

    def openapi(self) -> dict[str, Any]:
        bounds = {"minLength": self.min_length} if self.min_length else {}
        return {"type": "string", "maxLength": self.max_length, **bounds,
                "description": _TEXT_NOTE}


class JsonObject(RuleField):
    """A JSON object of bounded depth whose keys are text (``context``, ``attributes``)."""

    def rule(self, value: Any) -> dict[str, Any]:
        return rules.json_object(value, self.name or "object")

    def openapi(self) -> dict[str, Any]:
        return {"type": "object", "description": (
            f"a JSON object at most {rules.MAX_JSON_DEPTH} levels deep; keys and texts at "
            f"most {rules.MAX_JSON_TEXT} characters, {_TEXT_NOTE}; finite numbers; whole "
            "numbers within 64 bits")}


class ItemAttributes(JsonObject):
    """Item attributes: a JSON object whose reserved keys (``group_id``) are typed."""

    def rule(self, value: Any) -> dict[str, Any]:
        return rules.item_attributes(value)

    def openapi(self) -> dict[str, Any]:
        base = super().openapi()
        return {**base, "properties": {"group_id": {
            "anyOf": [{"type": "string"}, {"type": "number"}],
            "description": "items of one group (sizes of a product) are shown once"}}}


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
    """A category; ``parent_id`` must exist (or come in the same batch), no cycles."""

    class Meta:
        unknown = RAISE

    id = Identifier(required=True)
    name = Text(ID_LENGTH, load_default=None)
    parent_id = Identifier(load_default=None, allow_none=True)


class ItemSchema(Schema):
    """A product upsert; fields left out keep their stored value."""

    class Meta:
        unknown = RAISE

    id = Identifier(required=True)
    title = Text(rules.MAX_TITLE_LENGTH)
    description = Text(rules.MAX_DESCRIPTION_LENGTH)
    category_id = Identifier(allow_none=True)
    tags = fields.List(Text(rules.MAX_TAG_LENGTH, min_length=1),
                       validate=validate.Length(max=rules.MAX_TAGS))
    price = Number(allow_none=True, metadata={"minimum": 0},
                   validate=validate.Range(min=0, error="Price must not be negative."))
    original_price = Number(
        allow_none=True, metadata={"minimum": 0},
        validate=validate.Range(min=0, error="Original price must not be negative."))
    stock = fields.Integer(
        allow_none=True, strict=True,
        validate=validate.Range(min=0, max=rules.MAX_STOCK,
                                error=f"Stock must be a whole number from 0 to "
                                      f"{rules.MAX_STOCK}."),
    )
    active = fields.Boolean()
    image_url = Text(rules.MAX_URL_LENGTH, allow_none=True)
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
