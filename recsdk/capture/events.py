"""What a page may report: the beacon body and the events in it.

``navigator.sendBeacon`` sends a string as ``text/plain`` (which also spares a
cross-origin page a CORS preflight), so the body is JSON whatever its content type.
It is an array of events, or ``{"visitor": <visitor token>, "events": [...]}`` when the
page proves its visitor with a token rather than the visitor cookie. A body that cannot
be read is refused whole (:class:`BodyRefused`); events are judged one by one, so one
bad event does not lose the others.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from recsdk.capture.tokens import MAX_TOKEN_LENGTH
from recsdk.schemas import Identifier, Number, Text

#: The reactions a page may report, as stored feedback types.
BEACON_TYPES = ("impression", "click", "add_to_cart", "purchase", "not_interested", "rating")
#: Highest position accepted (a served list has at most 1000 items).
MAX_POSITION = 1000
#: Why an event or a request is refused: the ``reason`` label of the refusal counter.
#: Request-level: malformed, oversize, unsupported_media, rate_limited; the others are
#: per event.
REASONS = ("malformed", "oversize", "unsupported_media", "rate_limited", "bad_event",
           "bad_token", "expired", "wrong_visitor", "unknown_list", "not_in_list", "replay")
_ENVELOPE_KEYS = frozenset({"visitor", "events"})


class BeaconEventSchema(Schema):
    """One reaction to an item of a served list, as a page reports it."""

    class Meta:
        unknown = RAISE

    token = Text(MAX_TOKEN_LENGTH, min_length=1, required=True, metadata={
        "description": "the list token the page got with the list (data-recsdk-token)"})
    type = fields.String(required=True, validate=validate.OneOf(BEACON_TYPES))
    item_id = Identifier(required=True)
    position = fields.Integer(required=True, strict=True,
                              validate=validate.Range(1, MAX_POSITION), metadata={
                                  "description": "the item's 1-based position in the list"})
    value = Number(load_default=None, allow_none=True, metadata={
        "description": "a rating's stars, a purchase's revenue; a rating needs one"})

    @validates_schema
    def _rating_has_value(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("type") == "rating" and data.get("value") is None:
            raise ValidationError("A rating needs a value.", "value")


class BeaconBodySchema(Schema):
    """The envelope form of a beacon body (documentation; read by :func:`read_body`)."""

    visitor = fields.String(metadata={
        "description": "a visitor token, when the page cannot rely on the visitor cookie "
                       "(a widget on another site)"})
    events = fields.List(fields.Nested(BeaconEventSchema), required=True)


EVENT_SCHEMA = BeaconEventSchema()


@dataclass(frozen=True)
class BeaconEvent:
    token: str
    type: str
    item_id: str
    position: int
    value: float | None


class BodyRefused(Exception):
    """The body as a whole cannot be read: ``status`` and ``reason`` say why."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


def read_body(raw: bytes, max_events: int) -> tuple[Any, list[Any]]:
    """The body's visitor token (None when absent) and its raw events."""
    try:
        body = json.loads(raw, parse_constant=_refuse_constant)
    except UnicodeDecodeError as exc:
        raise BodyRefused(400, "malformed", f"The body is not UTF-8 text: {exc.reason} at "
                                            f"byte {exc.start}.") from exc
    except ValueError as exc:
        raise BodyRefused(400, "malformed", f"The body is not valid JSON: {exc}") from exc
    except RecursionError as exc:
        raise BodyRefused(400, "malformed", "The body is JSON nested too deeply.") from exc
    visitor = None
    if isinstance(body, dict):
        unknown = sorted(map(str, set(body) - _ENVELOPE_KEYS))
        if unknown:
            raise BodyRefused(400, "malformed", f"Unknown field(s) {', '.join(unknown)[:200]}"
                                                f": the body is an array of events or "
                                                f"{{\"visitor\", \"events\"}}.")
        visitor, body = body.get("visitor"), body.get("events")
    if not isinstance(body, list):
        raise BodyRefused(400, "malformed", "Expected a JSON array of events, or an object "
                                            "with an 'events' array.")
    if not body:
        raise BodyRefused(400, "malformed", "The batch is empty: send at least one event.")
    if len(body) > max_events:
        raise BodyRefused(413, "oversize", f"A batch of {len(body)} events is longer than "
                                           f"the limit of {max_events} (api.beacon_max_events);"
                                           " send them in several batches.")
    return visitor, body


def read_event(row: Any) -> BeaconEvent:
    """One event, validated; ValidationError names each bad field."""
    if not isinstance(row, dict):
        raise ValidationError({"_schema": ["An event is a JSON object."]})
    data = EVENT_SCHEMA.load(row)
    return BeaconEvent(data["token"], data["type"], data["item_id"], data["position"],
                       data["value"])


def _refuse_constant(constant: str) -> None:
    raise ValueError(f"{constant} is not a JSON value")
