"""Request bodies of the ingestion endpoints: one JSON object or an array of them.

Reading checks, in order, what makes a body unreadable as a batch (content type,
JSON syntax, shape, emptiness, ``api.max_batch``) so that row validation, done by the
SDK with the marshmallow schemas of :mod:`recsdk.schemas`, only sees a list of rows.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import request

from recsdk.api.errors import fail, validation_payload
from recsdk.api.extension import current_sdk
from recsdk.errors import ValidationFailed
from recsdk.rules import MAX_JSON_DEPTH

T = TypeVar("T")

_JSON_TYPES = {type(None): "null", bool: "a boolean", int: "a number", float: "a number",
               str: "a string"}


@dataclass(frozen=True)
class Batch:
    """The rows of a request; ``single`` when the body was one object, not an array."""

    rows: list[Any]
    single: bool


def read_batch(what: str, one: str) -> Batch:
    """The body's rows, or a 400/413/415 answer naming what is wrong with the body.

    ``what`` names the rows (``events``), ``one`` a single row (``event``).
    """
    if not request.is_json:
        fail(415, f"Send the {what} as JSON with 'Content-Type: application/json'"
                  f" (got {request.mimetype or 'no content type'!r}).")
    try:
        body = json.loads(request.get_data(cache=False), parse_constant=_not_json)
    except UnicodeDecodeError as exc:
        fail(400, f"The body is not UTF-8 text: {exc.reason} at byte {exc.start}.")
    except ValueError as exc:
        fail(400, f"The body is not valid JSON: {exc}")
    except RecursionError:
        fail(400, f"The body is JSON nested too deeply to read; {what} may nest objects "
                  f"at most {MAX_JSON_DEPTH} levels deep.")
    if isinstance(body, dict):
        return Batch([body], single=True)
    if not isinstance(body, list):
        kind = _JSON_TYPES.get(type(body), type(body).__name__)
        fail(400, f"Expected one {one} object or a JSON array of them, got {kind}.")
    if not body:
        fail(400, f"The array is empty: send at least one {one}.")
    limit = current_sdk().settings.api["max_batch"]
    if len(body) > limit:
        fail(413, f"A batch of {len(body)} {what} is longer than the limit of "
                  f"{limit} per request (api.max_batch); split it.")
    return Batch(body, single=False)


def _not_json(constant: str) -> None:
    """Python's json reads NaN and Infinity; JSON (RFC 8259) has no such numbers."""
    raise ValueError(f"{constant} is not a JSON value")


def apply(call: Callable[[Sequence[Any]], T], batch: Batch, what: str) -> T:
    """Run an SDK call on the rows; its validation errors become a 422 answer.

    The SDK refuses a batch as a whole, so a 422 means nothing of the request was
    stored. Messages are keyed by row number then field, or by field alone when
    the body was a single object.
    """
    try:
        return call(batch.rows)
    except ValidationFailed as exc:
        messages = exc.messages
        if batch.single and isinstance(messages, dict) and set(messages) == {0}:
            messages = messages[0]
        payload = validation_payload(what, messages)
        fail(422, payload["message"], errors=payload["errors"])


def body_doc(component: str, max_batch: int) -> dict[str, Any]:
    """The OpenAPI ``requestBody`` of a batch endpoint: one object or an array."""
    ref = {"$ref": f"#/components/schemas/{component}"}
    array = {"type": "array", "items": ref, "minItems": 1, "maxItems": max_batch}
    return {
        "required": True,
        "content": {"application/json": {"schema": {"oneOf": [ref, array]}}},
    }
