"""Query-string and response schemas of the REST API.

Request bodies use the input schemas of :mod:`recsdk.schemas`, shared with the Python
API; what is here only exists over HTTP.
"""

from __future__ import annotations

from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from recsdk.schemas import Identifier, Text, TextIdentifier

MAX_K = 1000
MAX_CART = 100
MAX_RATED_ITEMS = 1000


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
    variant = Text(257, min_length=1, load_default=None, metadata={
        "description": "QA only: force an experiment's variant (EXPERIMENT:VARIANT, or "
                       "VARIANT when unambiguous; also the X-Recsdk-Variant header); "
                       "forced lists are never counted in the analysis"})
    cart = fields.List(
        TextIdentifier(), load_default=None, validate=validate.Length(max=MAX_CART),
        metadata={"description": "item ids in the visitor's cart (repeat the parameter: "
                                 "cart=a&cart=b), for the cart placement's 'complete your "
                                 f"purchase'; at most {MAX_CART}"})


class RatingsQuery(Schema):
    """Whose ratings to predict, and of which items."""

    user_id = TextIdentifier(load_default=None, metadata={"description": "the shop's user id"})
    session_id = TextIdentifier(
        load_default=None,
        metadata={"description": "anonymous session; used when user_id is not given"})
    item_id = fields.List(
        TextIdentifier(), required=True, validate=validate.Length(1, MAX_RATED_ITEMS),
        metadata={"description": "items to rate, the parameter repeated "
                                 f"(item_id=a&item_id=b), 1 to {MAX_RATED_ITEMS}"})


class RatingsSchema(Schema):
    """Predicted ratings (stars, on the shop's scale) of the asked items."""

    user_id = fields.String(allow_none=True)
    ratings = fields.Dict(keys=fields.String(), values=fields.Float(allow_none=True),
                          metadata={"description": "item id -> predicted rating; null "
                                                   "where the model cannot rate it"})
    plugin = fields.String(allow_none=True, metadata={
        "description": "the plugin that predicted; null when none could"})
    model_run = fields.String(allow_none=True)
    failures = fields.List(fields.String())


class SimilarQuery(Schema):
    k = fields.Integer(load_default=10, validate=validate.Range(1, MAX_K))


class RecommendedItemSchema(Schema):
    item_id = fields.String()
    score = fields.Float(metadata={"description": (
        "the blended score the list is sorted by: each scoring plugin's scores are "
        "min-max scaled to [0, 1] over the candidates and averaged with the plugins' "
        "weights, so it compares items within one list, not across lists; fallback "
        "fill-ins get scores just below the last primary item")})
    position = fields.Integer(metadata={"description": "1-based rank in the list"})
    source = fields.String(allow_none=True, metadata={
        "description": "the plugin that contributed most to this item's score"})
    propensity = fields.Float(allow_none=True, metadata={
        "description": "the probability that a stochastic policy (a bandit plugin) showed "
                       "this item at this position; null when the list was not drawn at "
                       "random. Logged with the impression for off-policy evaluation"})


class RecommendationSchema(Schema):
    """A served list; quote ``request_id`` when posting feedback on it."""

    request_id = fields.String()
    items = fields.List(fields.Nested(RecommendedItemSchema))
    placement = fields.String()
    variant = fields.String()
    experiment = fields.String(allow_none=True, metadata={
        "description": "the A/B experiment that chose `variant`; null outside experiments"})
    plugins = fields.List(fields.String(), metadata={"description": "plugins that scored"})
    config_hash = fields.String()
    model_run = fields.String(allow_none=True, metadata={
        "description": "the training run that answered (what `recsdk train` printed); "
                       "null before any run"})
    degraded = fields.Boolean(metadata={"description": "a plugin failed; fallback used"})
    failures = fields.List(fields.String())
    token = fields.String(metadata={"description": (
        "list token: binds request_id to the user (or session) the list was served to, "
        "signed, expiring after api.beacon_token_ttl_s; put it in the page "
        "(data-recsdk-token) so that the browser can report on the list through "
        "POST /api/v1/beacon. Absent on similar-item lists, which serve no visitor")})


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


class TrainJobSchema(Schema):
    id = fields.String(metadata={"description": "job id: GET /api/v1/admin/jobs/<id>"})
    status = fields.String(metadata={"description": "queued, running, succeeded or failed"})
    result = fields.Dict(allow_none=True, metadata={
        "description": "the training report once succeeded (run_id, sizes, seconds)"})
    error = fields.String(allow_none=True)
    created_at = fields.String()
    started_at = fields.String(allow_none=True)
    finished_at = fields.String(allow_none=True)


class ModelRunSchema(Schema):
    id = fields.String()
    status = fields.String(metadata={"description": "training, ready or failed"})
    active = fields.Boolean(metadata={"description": "the run every process serves"})
    config_hash = fields.String()
    data_fingerprint = fields.String(allow_none=True)
    events_through = fields.Integer(allow_none=True)
    plugins = fields.List(fields.String())
    stats = fields.Dict()
    error = fields.String(allow_none=True)
    created_at = fields.String()
    finished_at = fields.String(allow_none=True)
    activated_at = fields.String(allow_none=True)


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


class PluginHealthSchema(Schema):
    breaker = fields.String(metadata={"description": "closed, half_open or open"})
    consecutive_failures = fields.Integer()
    in_flight = fields.Integer(metadata={"description": "calls running, abandoned included"})
    max_concurrency = fields.Integer()
    retry_in_s = fields.Float(metadata={"description": "when open: seconds to the trial call"})


class HealthSchema(Schema):
    status = fields.String(metadata={
        "description": "ok; degraded (some plugin's breaker is not closed: lists still "
                       "served, by the others and the fallback); or unavailable"})
    plugins = fields.Dict(keys=fields.String(), values=fields.Nested(PluginHealthSchema))
    database = fields.Nested(DatabaseHealthSchema)
    cache = fields.Nested(CacheHealthSchema)
    trained = fields.Boolean()
    model_run = fields.String(allow_none=True)


class ExperimentSummarySchema(Schema):
    """A declared A/B experiment: what it covers, its split and whether it runs now."""

    name = fields.String()
    placements = fields.List(fields.String())
    control = fields.String()
    variants = fields.Dict(keys=fields.String(), values=fields.Float(),
                           metadata={"description": "variant -> declared share"})
    holdout = fields.Float()
    shares_now = fields.Dict(keys=fields.String(), values=fields.Float(),
                             metadata={"description": "shares in effect now (ramp-up)"})
    start = fields.String(allow_none=True)
    stop = fields.String(allow_none=True)
    running = fields.Boolean()


class ReportQuery(Schema):
    attribution_days = fields.Float(
        load_default=7.0, validate=validate.Range(0, 365),
        metadata={"description": "days after an exposure a purchase event is credited"})


class ExperimentReportSchema(Schema):
    """``recsdk experiments report NAME --format json`` (docs/experiments.md, Reports):
    per arm counts and metrics, ``srm_p_value``, comparisons with the control (metric,
    lift with its confidence interval, raw and adjusted p-values), ``winner``, and
    ``message`` when there is nothing to report yet."""

    experiment = fields.String()
    control = fields.String()
    generated_at = fields.String()
    attribution_days = fields.Float()
    alpha = fields.Float()
    correction = fields.String()
    message = fields.String(allow_none=True)
    variants = fields.List(fields.Dict(), metadata={
        "description": "per arm (holdout included): variant, counts, metrics"})
    srm_p_value = fields.Float(allow_none=True)
    srm_mismatch = fields.Boolean(allow_none=True)
    expected_shares = fields.Dict(keys=fields.String(), values=fields.Float())
    comparisons = fields.List(fields.Dict(), metadata={
        "description": "per variant and metric against the control: lift_abs, lift_abs_ci, "
                       "lift_rel, lift_rel_ci, p_value, p_value_adjusted, significant"})
    skipped = fields.List(fields.String())
    winner = fields.String(allow_none=True)


# --------------------------------------------------------------------------- capture


class WidgetQuery(Schema):
    """Which list a page's widget shows; the visitor comes from a cookie or a token."""

    placement = Text(64, min_length=1, load_default=None, metadata={
        "description": "a known placement (default: `default`, or `similar` with item_id)"})
    k = fields.Integer(load_default=None, validate=validate.Range(1, MAX_K), metadata={
        "description": "list length, at most api.widget_max_k (default: the placement's k, "
                       "then pipeline.k)"})
    item_id = TextIdentifier(load_default=None, metadata={
        "description": "show items similar to this one (a product page) instead of the "
                       "visitor's recommendations"})
    visitor = Text(2048, min_length=1, load_default=None, metadata={
        "description": "a visitor token from the host page (POST /api/v1/visitor-token) or "
                       "from an earlier widget answer; without one the visitor cookie "
                       "decides, and without that a new anonymous visitor is made"})
    cart = fields.List(TextIdentifier(), load_default=None,
                       validate=validate.Length(max=MAX_CART),
                       metadata={"description": "item ids in the visitor's cart"})


class WidgetItemSchema(Schema):
    item_id = fields.String()
    position = fields.Integer(metadata={"description": "1-based rank in the list"})
    title = fields.String(allow_none=True)
    price = fields.Float(allow_none=True)
    original_price = fields.Float(allow_none=True)
    image_url = fields.String(allow_none=True, metadata={"description": "as stored"})
    url = fields.String(allow_none=True, metadata={
        "description": "the item's attributes.url, when it is text"})


class WidgetSchema(Schema):
    """A list for one visitor, with what the widget shows and its list token."""

    request_id = fields.String()
    placement = fields.String()
    variant = fields.String()
    experiment = fields.String(allow_none=True)
    degraded = fields.Boolean()
    token = fields.String(metadata={"description": "the list token (see /recommendations)"})
    visitor = fields.String(metadata={
        "description": "a visitor token, present when the visitor cookie did not prove the "
                       "visitor: a page on another site keeps it and sends it back (as "
                       "`visitor` here, and in beacon bodies)"})
    items = fields.List(fields.Nested(WidgetItemSchema))


class ClickQuery(Schema):
    """The logging redirect's target and the click it reports (loose: a bad click is
    counted and not stored, and the visitor is still sent on)."""

    to = fields.String(required=True, metadata={
        "description": "where to go: a path on this site (/...) or an http(s) URL on a "
                       "host in api.redirect_hosts"})
    token = fields.String(load_default=None, metadata={"description": "the list token"})
    item = fields.String(load_default=None, metadata={"description": "the clicked item id"})
    pos = fields.String(load_default=None, metadata={
        "description": "the clicked item's 1-based position"})


class BeaconErrorSchema(Schema):
    reason = fields.String(metadata={"description": (
        "bad_event, bad_token, expired, wrong_visitor, unknown_list, not_in_list or "
        "replay")})
    message = fields.String()


class BeaconResultSchema(Schema):
    """What became of each event of a beacon batch."""

    received = fields.Integer()
    accepted = fields.Integer(metadata={"description": "stored as feedback"})
    refused = fields.Integer(metadata={"description": "not stored"})
    reasons = fields.Dict(keys=fields.String(), values=fields.Integer(),
                          metadata={"description": "refused events per reason"})
    errors = fields.Dict(keys=fields.String(), values=fields.Nested(BeaconErrorSchema),
                         metadata={"description": "event index (from 0) -> why refused"})


class VisitorTokenRequest(Schema):
    """Whom a visitor token is for: a signed-in user, or a session of the shop's own."""

    class Meta:
        unknown = RAISE

    user_id = Identifier(load_default=None)
    session_id = Identifier(load_default=None)

    @validates_schema
    def _one_of(self, data: dict[str, Any], **_: Any) -> None:
        if (data.get("user_id") is None) == (data.get("session_id") is None):
            raise ValidationError("Give exactly one of user_id and session_id.")


class VisitorTokenSchema(Schema):
    token = fields.String(metadata={"description": (
        "the visitor token: pass it to the widget (data-visitor) or set it as the visitor "
        "cookie")})
    cookie = fields.String(metadata={"description": "the visitor cookie's name"})
    expires_at = fields.Float(metadata={"description": "UNIX seconds"})
