"""Reads: recommendations for a user or session, and items similar to an item.

Open without an API key: storefront pages call them. Each served list is logged
(off the request path) under its ``request_id`` so that feedback can credit it.
Results are already JSON-shaped (``to_dict``), so they are sent as they are: the
response schema documents them without a marshmallow dump on the hot path. A user's or
session's list carries its list token, for the page's feedback (``recsdk.api.capture``).
"""

from __future__ import annotations

from flask import Response, jsonify, request
from flask_smorest import Blueprint

from recsdk.api.capture import current_capture
from recsdk.api.errors import fail, summarise
from recsdk.api.extension import current_sdk
from recsdk.api.schemas import (
    RatingsQuery,
    RatingsSchema,
    RecommendationQuery,
    RecommendationSchema,
    SimilarQuery,
)
from recsdk.capture.tokens import Visitor
from recsdk.errors import ValidationFailed

#: Schema instances, not classes: given a class, webargs builds a schema per request.
RECOMMENDATION_QUERY = RecommendationQuery()
SIMILAR_QUERY = SimilarQuery()
RATINGS_QUERY = RatingsQuery()
#: QA override of an experiment's assignment, as a header (or the ``variant`` parameter)
FORCE_VARIANT_HEADER = "X-Recsdk-Variant"


def make_serving_blueprint() -> Blueprint:
    blp = Blueprint("serving", __name__, url_prefix="/api/v1",
                    description="Recommendations and similar items (open)")

    @blp.route("/recommendations", methods=["GET"])
    @blp.arguments(RECOMMENDATION_QUERY, location="query", as_kwargs=True)
    @blp.response(200, RecommendationSchema)
    @blp.alt_response(400, response="BAD_REQUEST")
    def get_recommendations(user_id: str | None, session_id: str | None, k: int | None,
                            placement: str, cart: list[str] | None,
                            variant: str | None) -> Response:
        """Top k items for a user (or an anonymous session) at a placement.

        ``placement`` must be configured (``[placements.NAME]``) or built in
        (``default``, ``home``, ``similar``, ``cart``); any other gets a 422 listing
        them. ``cart`` reaches the plugins as ``request.context["cart"]``.
        """
        if user_id is None and session_id is None:
            fail(400, "Say whom the list is for: give user_id or session_id "
                      "(query parameters).")
        sdk = current_sdk()
        # before anything is computed or logged: placements name logs and metric labels
        try:
            sdk.settings.check_placement(placement)
        except ValidationFailed as exc:  # a query argument, shaped as webargs' are
            errors = {"query": exc.messages}
            fail(422, f"Invalid request: {summarise(errors)}", errors=errors)
        context = {"cart": cart} if cart else None
        forced = variant or request.headers.get(FORCE_VARIANT_HEADER) or None
        try:
            result = sdk.recommend(user_id, session_id=session_id, k=k, placement=placement,
                                   context=context, force_variant=forced)
        except ValidationFailed as exc:
            if forced is None or "variant" not in exc.messages:
                raise
            fail(400, f"Bad forced variant: {summarise(exc.messages)}", errors=exc.messages)
        body = result.to_dict()
        body["token"] = current_capture().tokens.list_token(
            result.request_id, Visitor.of(user_id, session_id))
        return jsonify(body)

    @blp.route("/items/<path:item_id>/similar", methods=["GET"])
    @blp.arguments(SIMILAR_QUERY, location="query", as_kwargs=True)
    @blp.response(200, RecommendationSchema)
    @blp.alt_response(409, response="CONFLICT", description="No model trained yet")
    def get_similar(item_id: str, k: int) -> Response:
        """Items like ``item_id``, for product pages; the item itself is left out."""
        return jsonify(current_sdk().similar_items(item_id, k).to_dict())

    @blp.route("/ratings", methods=["GET"])
    @blp.arguments(RATINGS_QUERY, location="query", as_kwargs=True)
    @blp.response(200, RatingsSchema)
    @blp.alt_response(400, response="BAD_REQUEST")
    @blp.alt_response(409, response="CONFLICT", description="No model trained yet")
    def get_ratings(user_id: str | None, session_id: str | None,
                    item_id: list[str]) -> Response:
        """Predicted stars of items for a user, for pages that show them.

        From the first enabled plugin that predicts ratings (``rating_mf``); ``plugin``
        is null, and every rating null, when none is enabled or none knows the user.
        """
        if user_id is None and session_id is None:
            fail(400, "Say whom the ratings are for: give user_id or session_id "
                      "(query parameters).")
        prediction = current_sdk().predict_ratings(user_id, item_id, session_id=session_id)
        return jsonify(prediction.to_dict())

    return blp
