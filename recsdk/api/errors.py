"""One JSON shape for every error: ``{"code", "status", "message", "errors"}``.

flask-smorest already answers HTTP errors and argument validation this way; this
module adds a message to errors raised without one (413 from Flask's size limit, say)
and maps recsdk's own exceptions: field-level validation is 422, a model that is
not trained yet is 409, and a database that is down, busy or in a deadlock is 503 with
``Retry-After``: something the client can wait out, not a server bug.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, NoReturn

from flask import Blueprint, Flask, request
from flask_smorest import Api
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge, default_exceptions

from recsdk.errors import NotTrainedError, ValidationFailed

log = logging.getLogger(__name__)

#: How many problems the one-line ``message`` lists; ``errors`` always has them all.
SUMMARY_PROBLEMS = 3
#: Seconds a client is asked to wait when the database cannot serve the request.
RETRY_AFTER_S = 5
#: Database failures a client can wait out: unreachable, restarting, pool exhausted,
#: a deadlock or serialisation failure (psycopg raises those as OperationalError).
UNAVAILABLE = (OperationalError, InterfaceError, DisconnectionError, PoolTimeout)


class RecApi(Api):
    """flask-smorest's Api whose error payloads always carry a ``message``."""

    def handle_http_exception(self, error: HTTPException) -> Any:
        payload, code, headers = super().handle_http_exception(error)
        if "message" in payload:
            return payload, code, headers
        if "errors" in payload:  # webargs' validation errors (query arguments)
            payload["message"] = f"Invalid request: {summarise(payload['errors'])}"
        elif isinstance(error, RequestEntityTooLarge):  # Flask's MAX_CONTENT_LENGTH
            limit = request.max_content_length  # the app's, or the API's when mounted
            payload["message"] = (f"The body is larger than the limit of {limit} bytes per "
                                  "request (api.max_content_length); split it.")
        elif error.description:
            payload["message"] = error.description
        return payload, code, headers


def fail(code: int, message: str, **data: Any) -> NoReturn:
    """Stop the request with ``code``; ``data`` (``errors``, ``headers``) joins the body."""
    error = default_exceptions[code](message)
    error.data = {"message": message, **data}  # type: ignore[attr-defined]
    raise error


def register_error_handlers(target: Flask | Blueprint) -> None:
    """Answer recsdk's exceptions as JSON in ``target``: a whole app, or one blueprint."""
    target.register_error_handler(ValidationFailed, _validation_failed)
    target.register_error_handler(NotTrainedError, _not_trained)
    for error in UNAVAILABLE:
        target.register_error_handler(error, _database_unavailable)


def validation_payload(what: str, messages: Any) -> dict[str, Any]:
    """The 422 body for messages keyed by field, or by row number then field."""
    return {
        "code": 422,
        "status": "Unprocessable Entity",
        "message": f"Invalid {what}: {summarise(messages)}",
        "errors": {"json": messages},
    }


def summarise(messages: Any) -> str:
    """The first few problems as ``row 3: user_id: Missing data ...`` text."""
    problems = list(_problems(messages, ()))
    shown = "; ".join(problems[:SUMMARY_PROBLEMS])
    more = len(problems) - SUMMARY_PROBLEMS
    return f"{shown} (and {more} more)" if more > 0 else shown


def _problems(messages: Any, path: tuple[str, ...]) -> Any:
    if isinstance(messages, Mapping):
        keys = sorted(messages, key=lambda k: (not isinstance(k, int), str(k)))
        for key in keys:
            label = f"row {key}" if isinstance(key, int) and not path else str(key)
            step = () if key == "_schema" else (label,)
            yield from _problems(messages[key], path + step)
    elif isinstance(messages, list | tuple):
        text = " ".join(str(m) for m in messages if not isinstance(m, Mapping | list))
        if text:
            yield ": ".join((*path, text))
        for nested in (m for m in messages if isinstance(m, Mapping | list)):
            yield from _problems(nested, path)
    else:
        yield ": ".join((*path, str(messages)))


def _validation_failed(exc: ValidationFailed) -> tuple[dict[str, Any], int]:
    return validation_payload("input", exc.messages), 422


def _not_trained(exc: NotTrainedError) -> tuple[dict[str, Any], int]:
    return {
        "code": 409,
        "status": "Conflict",
        "message": f"{exc}; train with POST /api/v1/admin/train",
    }, 409



def _database_unavailable(exc: Exception) -> tuple[dict[str, Any], int, dict[str, str]]:
    reason = getattr(exc, "orig", None) or exc
    log.warning("database unavailable, answered 503: %s", str(reason).splitlines()[0:1])
    return {
        "code": 503,
        "status": "Service Unavailable",
        "message": f"The database is unavailable or busy ({type(reason).__name__}); retry "
                   f"in {RETRY_AFTER_S} s. A write that got this answer may be retried "
                   "safely when its events carry event_id.",
    }, 503, {"Retry-After": str(RETRY_AFTER_S)}
