"""Query-string and response schemas of the REST API.

Request bodies use the input schemas of :mod:`recsdk.schemas`, shared with the Python
API; what is here only exists over HTTP.
"""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from recsdk.schemas import Text, TextIdentifier

MAX_K = 1000


class RecommendationQuery(Schema):
    """Who the list is for (a user, or an anonymous session) and how long it is."""

    user_id = TextIdentifier(load_default=None,
                             metadata={"description": "the shop's user id"})
    session_id = TextIdentifier(
        load_default=None,
        metadata={"description": "anonymous session; used when user_id is not given"},
    )
    k = fields.Integer(
        load_default=None, validate=validate.Range(1, MAX_K),
        metadata={"description": "list length (default: the placement's k, then "
                                 "pipeline.k)"},
    )
    placement = Text(64, min_length=1, load_default="default")


class SimilarQuery(Schema):
    k = fields.Integer(load_default=10, validate=validate.Range(1, MAX_K))


class RecommendedItemSchema(Schema):
    item_id = fields.String()
    score = fields.Float()
    position = fields.Integer(metadata={"description": "1-based rank in the list"})


class RecommendationSchema(Schema):
    """A served list; quote ``request_id`` when posting feedback on it."""

    request_id = fields.String()
    items = fields.List(fields.Nested(RecommendedItemSchema))
    placement = fields.String()
    variant = fields.String()
    plugins = fields.List(fields.String(), metadata={"description": "plugins that scored"})
    config_hash = fields.String()
    degraded = fields.Boolean(metadata={"description": "a plugin failed; fallback used"})
    failures = fields.List(fields.String())


class EventsResultSchema(Schema):
    received = fields.Integer()
    stored = fields.Integer(metadata={"description": "new events, durable on answer"})
    duplicates = fields.Integer(metadata={"description": "event_id already stored"})


class UpsertResultSchema(Schema):
    received = fields.Integer()
    upserted = fields.Integer()


class FeedbackResultSchema(Schema):
    received = fields.Integer()
    stored = fields.Integer()


class TrainReportSchema(Schema):
    run_id = fields.String()
    users = fields.Integer()
    items = fields.Integer()
    interactions = fields.Integer()
    plugins = fields.Dict(keys=fields.String(), values=fields.Integer(),
                          metadata={"description": "bytes of stored state per plugin"})
    seconds = fields.Float()


class DatabaseHealthSchema(Schema):
    status = fields.String(metadata={"description": "ok or unreachable"})
    dialect = fields.String()
    error = fields.String()


class CacheHealthSchema(Schema):
    backend = fields.String(metadata={"description": "memory or redis"})
    available = fields.Boolean()


class HealthSchema(Schema):
    status = fields.String(metadata={"description": "ok or unavailable"})
    database = fields.Nested(DatabaseHealthSchema)
    cache = fields.Nested(CacheHealthSchema)
    trained = fields.Boolean()
    model_run = fields.String(allow_none=True)
