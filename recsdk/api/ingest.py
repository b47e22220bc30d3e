"""Writes: events, catalogue (items, categories), users and feedback.

Every endpoint takes one JSON object or an array of them and hands the rows to the
SDK, which validates the whole batch and stores it in one transaction: either the
request is stored completely (and durably, before the answer) or nothing of it is.
"""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint
from flask_smorest.error_handler import ErrorSchema

from recsdk.api.auth import SECURITY, require_api_key
from recsdk.api.batch import apply, body_doc, read_batch
from recsdk.api.extension import current_sdk
from recsdk.api.schemas import EventsResultSchema, FeedbackResultSchema, UpsertResultSchema

#: Error answers every batch endpoint can give (documented in the OpenAPI document).
BATCH_ERRORS = (400, 401, 413, 415, 422, 503)
#: What each error means, in the OpenAPI document.
ERROR_DESCRIPTIONS = {
    400: "The body cannot be read: invalid JSON, not UTF-8, nested too deeply to parse, "
         "not an object or an array, or an empty array",
    401: "Missing or wrong API key",
    413: "Body over api.max_content_length bytes, or more rows than api.max_batch",
    415: "Body not sent as application/json",
    422: "A row or field breaks a validation rule; errors.json names each one",
    503: "The database is unavailable or busy; retry after the Retry-After seconds",
}
RETRY_HEADER = {"Retry-After": {"description": "seconds to wait before retrying",
                                "schema": {"type": "integer"}}}


def make_ingest_blueprint(max_batch: int) -> Blueprint:
    blp = Blueprint("ingest", __name__, url_prefix="/api/v1",
                    description="Events, catalogue, users and feedback (API key guarded)")
    blp.before_request(require_api_key)

    def documented(component: str) -> Any:
        """Decorate a view with its request body, security and error answers."""
        def wrap(view: Any) -> Any:
            for code in BATCH_ERRORS:
                headers = RETRY_HEADER if code == 503 else None
                view = blp.alt_response(code, schema=ErrorSchema, headers=headers,
                                        description=ERROR_DESCRIPTIONS[code])(view)
            return blp.doc(requestBody=body_doc(component, max_batch), security=SECURITY)(
                view)
        return wrap

    @blp.route("/events", methods=["POST"])
    @blp.response(201, EventsResultSchema, description="At least one event was new")
    @blp.alt_response(200, schema=EventsResultSchema, success=True,
                      description="Every event was a duplicate (event_id already stored)")
    @documented("Event")
    def post_events() -> tuple[dict[str, int], int]:
        """Track behaviour events (view, click, add_to_cart, purchase, rating, ...)."""
        report = apply(current_sdk().track_many, read_batch("events", "event"), "events")
        answer = {"received": report.received, "stored": report.stored,
                  "duplicates": report.duplicates}
        return answer, 201 if report.stored else 200

    @blp.route("/items", methods=["PUT"])
    @blp.response(200, UpsertResultSchema)
    @documented("Item")
    def put_items() -> dict[str, int]:
        """Insert or update products; fields left out keep their stored value."""
        return _upsert(current_sdk().upsert_items, "items", "item")

    @blp.route("/users", methods=["PUT"])
    @blp.response(200, UpsertResultSchema)
    @documented("User")
    def put_users() -> dict[str, int]:
        """Insert or update users and their attributes."""
        return _upsert(current_sdk().upsert_users, "users", "user")

    @blp.route("/categories", methods=["PUT"])
    @blp.response(200, UpsertResultSchema)
    @documented("Category")
    def put_categories() -> dict[str, int]:
        """Insert or update categories; a parent may come in the same request."""
        return _upsert(current_sdk().upsert_categories, "categories", "category")

    @blp.route("/feedback", methods=["POST"])
    @blp.response(201, FeedbackResultSchema)
    @documented("Feedback")
    def post_feedback() -> dict[str, int]:
        """Reactions to served lists, credited through their ``request_id``."""
        batch = read_batch("feedback", "feedback row")
        stored = apply(current_sdk().log_feedback, batch, "feedback")
        return {"received": len(batch.rows), "stored": len(stored)}

    return blp


def _upsert(call: Any, what: str, one: str) -> dict[str, int]:
    batch = read_batch(what, one)
    return {"received": len(batch.rows), "upserted": apply(call, batch, what)}
