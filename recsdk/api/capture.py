"""Feedback capture over HTTP: the beacon, the logging redirect, the widget, the script.

These endpoints are called from shop pages, so they take no API key: a signed list
token (what :func:`list_token` puts in the page) and the visitor cookie (or a visitor
token) decide what is credited, and every client (IP and visitor) is rate limited.
A shop's own Flask views call :func:`list_token` for each list they render; the first
such call in a request also gives the visitor the visitor cookie, on that response.
How a page integrates: docs/feedback_capture.md.
"""

from __future__ import annotations

import logging
import math
import secrets
import threading
import time
from pathlib import Path
from typing import Any

from flask import (
    Response,
    current_app,
    g,
    has_request_context,
    jsonify,
    redirect,
    request,
    send_file,
    url_for,
)
from flask_smorest import Blueprint
from flask_smorest.error_handler import ErrorSchema

import recsdk
from recsdk.api.auth import SECURITY, require_api_key
from recsdk.api.errors import UNAVAILABLE, fail, summarise
from recsdk.api.extension import current_sdk
from recsdk.api.schemas import (
    BeaconResultSchema,
    ClickQuery,
    VisitorTokenRequest,
    VisitorTokenSchema,
    WidgetQuery,
    WidgetSchema,
)
from recsdk.capture.display import display_items
from recsdk.capture.events import BeaconBodySchema, BeaconEventSchema, BodyRefused, read_body
from recsdk.capture.intake import Capture
from recsdk.capture.redirects import UnsafeTarget, safe_target
from recsdk.capture.tokens import TokenError, Visitor
from recsdk.errors import ValidationFailed
from recsdk.types import RecommendationResult

log = logging.getLogger(__name__)

#: Where the capture layer of an app lives, beside its SDK.
EXTENSION = "recsdk.capture"
#: The capture blueprint's name when the API is mounted in a shop's app.
MOUNTED_BLUEPRINT = "recsdk_capture"
#: The browser script, shipped in the wheel (setup.cfg package_data).
SCRIPT = Path(recsdk.__file__).parent / "static" / "recsdk.js"
#: Seconds browsers and CDNs may keep the script.
SCRIPT_MAX_AGE_S = 3600
#: Body types a beacon may come as: sendBeacon sends strings as text/plain.
BEACON_MEDIA = ("application/json", "text/plain")
_G_VISITOR = "_recsdk_visitor"
_lock = threading.Lock()
_RETRY = {"Retry-After": {"description": "seconds until the client's window has room again",
                          "schema": {"type": "integer"}}}
_NO_STORE = {"Cache-Control": "no-store"}


def current_capture() -> Capture:
    """The capture layer of the current app's SDK, built on first use."""
    sdk = current_sdk()
    extensions = current_app.extensions
    capture = extensions.get(EXTENSION)
    if capture is None or capture.sdk is not sdk:
        with _lock:
            capture = extensions.get(EXTENSION)
            if capture is None or capture.sdk is not sdk:
                capture = extensions[EXTENSION] = Capture(sdk)
    return capture


# ---- helpers for a shop's own views ------------------------------------------------


def list_token(result: RecommendationResult, user_id: str | None = None,
               session_id: str | None = None) -> str:
    """The token a page needs to report on ``result``, served to that user or session.

    Called while handling a request, it also has the response set the visitor cookie
    for that visitor (unless the request already proves it), so the page's beacons and
    redirect clicks are credited.
    """
    capture = current_capture()
    visitor = Visitor.of(user_id, session_id)
    if has_request_context():
        setattr(g, _G_VISITOR, visitor)
    return capture.tokens.list_token(result.request_id, visitor)


def visitor_token(user_id: str | None = None, session_id: str | None = None) -> str:
    """A visitor token, for ``data-visitor`` of a widget the page embeds."""
    return current_capture().tokens.visitor_token(Visitor.of(user_id, session_id))


def click_url(token: str, item_id: str, position: int, to: str) -> str:
    """The logging redirect for a recommended item's link (works without JavaScript)."""
    return url_for(endpoint("click_redirect"), token=token, item=item_id, pos=position,
                   to=to)


def script_url() -> str:
    """Where the current app serves recsdk.js (for the page's ``<script src>``)."""
    return url_for(endpoint("script"))


def endpoint(view: str) -> str:
    """The endpoint of a capture view in the current app: ``capture.<view>`` in
    recsdk's own app, ``recsdk_capture.<view>`` where the API is mounted in a shop's
    app (whose blueprint names get the ``recsdk_`` prefix)."""
    blueprint = MOUNTED_BLUEPRINT if MOUNTED_BLUEPRINT in current_app.blueprints else "capture"
    return f"{blueprint}.{view}"


def set_visitor_cookie(response: Response, visitor: Visitor) -> None:
    capture = current_capture()
    response.set_cookie(capture.api["visitor_cookie"], capture.tokens.visitor_token(visitor),
                        max_age=int(capture.api["visitor_ttl_s"]), path="/",
                        secure=request.is_secure, httponly=True, samesite="Lax")


def _cookie_visitor(capture: Capture) -> Visitor | None:
    return capture.proven_visitor(request.cookies.get(capture.api["visitor_cookie"]))


def _give_cookie(response: Response) -> Response:
    """After any request of the app in which :func:`list_token` was called."""
    visitor = g.pop(_G_VISITOR, None)
    if visitor is not None and _cookie_visitor(current_capture()) != visitor:
        set_visitor_cookie(response, visitor)
    return response


def _client(visitors: list[Visitor] | tuple[Visitor, ...], new: bool = False) -> str:
    """Whom a rate limit counts: the address and the proven visitor(s)."""
    who = "+".join(sorted(v.key for v in visitors)) or ("new" if new else "-")
    return f"{request.remote_addr}|{who}"


def _limit(capture: Capture, scope: str, client: str) -> None:
    wait = capture.wait_s(scope, client)
    if wait > 0:
        fail(429, f"Too many requests from this client; retry in {math.ceil(wait)} s "
                  f"(api.{scope}_rate_per_s, api.{scope}_burst).",
             headers={"Retry-After": str(max(1, math.ceil(wait)))})


def _view() -> str:
    """The view's name of this request's endpoint, without its blueprint's."""
    return (request.endpoint or "").rpartition(".")[2]


def _open_cors(response: Response) -> Response:
    """Pages of other sites may read widget answers: they never carry the cookie's
    visitor to such a page (the browser withholds ``*`` answers to requests with
    credentials)."""
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response


def make_capture_blueprint() -> Blueprint:
    blp = Blueprint("capture", __name__, url_prefix="/api/v1",
                    description="Feedback capture from pages: beacon, logging redirect, "
                                "widget and its script (open; signed tokens)")
    blp.after_app_request(_give_cookie)

    # only this blueprint's requests reach these; its name is "recsdk_capture" where the
    # API is mounted in a shop's app, so they compare the view's name alone
    @blp.before_request
    def guard_issuing() -> None:
        if _view() == "issue_visitor_token":
            require_api_key()

    @blp.after_request
    def cors(response: Response) -> Response:
        if _view() in ("beacon", "widget"):
            _open_cors(response)
        return response

    @blp.route("/beacon", methods=["POST"])
    @blp.doc(security=[], requestBody={"required": True, "content": {
        "application/json": {"schema": {"oneOf": [
            {"type": "array", "items": {"$ref": "#/components/schemas/BeaconEvent"},
             "minItems": 1},
            {"$ref": "#/components/schemas/BeaconBody"}]}},
        "text/plain": {"schema": {"type": "string", "description": (
            "the same JSON as text (what navigator.sendBeacon sends)")}}}})
    @blp.response(200, BeaconResultSchema, description="The batch was read; `errors` "
                  "names each refused event and why")
    @blp.alt_response(400, schema=ErrorSchema, description="Not JSON, or neither an "
                      "array of events nor {visitor, events}, or an empty batch")
    @blp.alt_response(413, schema=ErrorSchema, description="Over api.beacon_max_bytes "
                      "bytes or api.beacon_max_events events")
    @blp.alt_response(415, schema=ErrorSchema, description="Neither application/json nor "
                      "text/plain")
    @blp.alt_response(429, schema=ErrorSchema, headers=_RETRY,
                      description="This client (address and visitor) sent too many")
    @blp.alt_response(503, schema=ErrorSchema, description="The database is unavailable")
    def beacon() -> dict[str, Any]:
        """Events a page saw and did (impressions, clicks, add-to-cart, purchases, "not
        interested", ratings) on lists it was served, in one batch.

        No API key: each event carries its list's token; the visitor cookie (or the
        body's visitor token) must prove the visitor the list was served to. Events
        are judged one by one; refused ones are counted by reason and never stored.
        """
        capture = current_capture()
        if request.mimetype not in BEACON_MEDIA:
            capture.refused("unsupported_media")
            fail(415, "Send the events as JSON, with Content-Type application/json or "
                      f"text/plain (got {request.mimetype or 'none'!r}).")
        try:
            token, rows = read_body(_body(capture.api["beacon_max_bytes"]),
                                    capture.api["beacon_max_events"])
        except BodyRefused as exc:
            capture.refused(exc.reason)
            fail(exc.status, str(exc))
        visitors = [v for v in (_cookie_visitor(capture), capture.proven_visitor(token))
                    if v is not None]
        _limit(capture, "beacon", _client(visitors))
        return capture.accept(rows, visitors).to_dict()

    @blp.route("/r", methods=["GET"])
    @blp.arguments(ClickQuery, location="query", as_kwargs=True)
    @blp.doc(security=[], responses={"302": {
        "description": "To `to`; the click is stored when token, item and position name "
                       "an item of a list served to the visitor of the visitor cookie",
        "headers": {"Location": {"schema": {"type": "string"}}}}})
    @blp.alt_response(400, schema=ErrorSchema, description="`to` is neither a path of "
                      "this site nor a URL on a host in api.redirect_hosts")
    def click_redirect(to: str, token: str | None, item: str | None,
                       pos: str | None) -> Response:
        """A recommended item's link that works without JavaScript: logs the click,
        then redirects to the item's page. Never to a host not listed: no open
        redirect."""
        capture = current_capture()
        try:
            target = safe_target(to, capture.api["redirect_hosts"])
        except UnsafeTarget as exc:
            fail(400, str(exc))
        visitor = _cookie_visitor(capture)
        visitors = [visitor] if visitor is not None else []
        if capture.wait_s("beacon", _client(visitors)) == 0:
            whole = pos is not None and pos.isascii() and pos.isdigit() and len(pos) < 6
            position: Any = int(pos) if whole else pos
            event = {"token": token, "type": "click", "item_id": item, "position": position}
            try:
                capture.accept([event], visitors)
            except UNAVAILABLE as exc:  # the visitor's way on matters more than the count
                log.warning("logging redirect: click not stored (database: %s)",
                            type(exc).__name__)
        response = redirect(target, 302)
        response.headers.update(_NO_STORE)
        response.headers["Referrer-Policy"] = "no-referrer"  # the token stays here
        return response

    @blp.route("/widget/recommendations", methods=["GET"])
    @blp.arguments(WidgetQuery, location="query", as_kwargs=True)
    @blp.doc(security=[])
    @blp.response(200, WidgetSchema)
    @blp.alt_response(403, schema=ErrorSchema, description="The visitor token does not "
                      "verify (forged or expired)")
    @blp.alt_response(409, schema=ErrorSchema, description="Similar items before any "
                      "training")
    @blp.alt_response(429, schema=ErrorSchema, headers=_RETRY,
                      description="This client (address and visitor) asked too often")
    @blp.alt_response(503, schema=ErrorSchema, description="The database is unavailable")
    def widget(placement: str | None, k: int | None, item_id: str | None,
               visitor: str | None, cart: list[str] | None) -> Response:
        """A list for the page's own visitor, with titles, prices, images and its
        list token, for the embeddable widget (``recsdk.js``).

        Whom it is for is never a parameter: a visitor token (from the host page, or
        from an earlier answer) or else the visitor cookie says; without either, a new
        anonymous visitor is made and given the cookie.
        """
        capture = current_capture()
        sdk = capture.sdk
        proven = _cookie_visitor(capture) if visitor is None else None
        if visitor is not None:
            try:
                proven = capture.tokens.read_visitor(visitor)
            except TokenError as exc:
                fail(403, f"{exc} Ask the host page for a fresh one, or leave 'visitor' "
                          "out to be served as an anonymous visitor.")
        _limit(capture, "widget", _client([proven] if proven else [], new=True))
        who = proven or Visitor(session_id=secrets.token_hex(16))
        placement = placement or ("similar" if item_id is not None else "default")
        try:
            sdk.settings.check_placement(placement)
        except ValidationFailed as exc:
            errors = {"query": exc.messages}
            fail(422, f"Invalid request: {summarise(errors)}", errors=errors)
        most = capture.api["widget_max_k"]
        if k is not None and k > most:
            errors = {"query": {"k": [f"A widget shows at most {most} items "
                                      "(api.widget_max_k)."]}}
            fail(422, f"Invalid request: {summarise(errors)}", errors=errors)
        if k is None:  # the placement's length, within what a widget shows
            k = min(most, int(sdk.settings.placements.get(placement, {}).get("k")
                              or sdk.settings.pipeline["k"]))
        if item_id is not None:
            result = sdk.similar_items(item_id, k, placement=placement)
        else:
            result = sdk.recommend(who.user_id, session_id=who.session_id, k=k,
                                   placement=placement,
                                   context={"cart": cart} if cart else None)
        body: dict[str, Any] = {
            "request_id": result.request_id, "placement": result.placement,
            "variant": result.variant, "experiment": result.experiment,
            "degraded": result.degraded,
            "token": capture.tokens.list_token(result.request_id, who),
            "items": display_items(sdk.catalog, result.items)}
        by_cookie = visitor is None and proven is not None
        if not by_cookie:  # a cookie-less page keeps this and sends it back
            body["visitor"] = capture.tokens.visitor_token(who)
        out = jsonify(body)
        out.headers.update(_NO_STORE)
        if not by_cookie:
            set_visitor_cookie(out, who)
        return out

    @blp.route("/static/recsdk.js", methods=["GET"])
    @blp.doc(security=[], responses={"200": {
        "description": "The browser script: impressions, clicks, track(), the widget",
        "content": {"text/javascript": {"schema": {"type": "string"}}}}})
    def script() -> Response:
        """The capture script (``<script src=".../api/v1/static/recsdk.js">``);
        cacheable, with an ETag."""
        response = send_file(SCRIPT, mimetype="text/javascript", max_age=SCRIPT_MAX_AGE_S,
                             conditional=True, etag=True)
        response.headers["Cache-Control"] = f"public, max-age={SCRIPT_MAX_AGE_S}"
        return response

    @blp.route("/visitor-token", methods=["POST"])
    @blp.arguments(VisitorTokenRequest, location="json")
    @blp.doc(security=SECURITY)
    @blp.response(200, VisitorTokenSchema)
    @blp.alt_response(401, schema=ErrorSchema, description="Missing or wrong API key")
    def issue_visitor_token(body: dict[str, Any]) -> dict[str, Any]:
        """A visitor token for a signed-in user or a session, for a host page's backend
        (any language) to give its widget (``data-visitor``); API key guarded, since it
        speaks for that user."""
        capture = current_capture()
        now = time.time()
        who = Visitor.of(body.get("user_id"), body.get("session_id"))
        return {"token": capture.tokens.visitor_token(who, now=now),
                "cookie": capture.api["visitor_cookie"],
                "expires_at": float(int(now + capture.api["visitor_ttl_s"]))}

    return blp


#: Schemas of the beacon body, by their name in the OpenAPI document.
BEACON_SCHEMAS = {"BeaconEvent": BeaconEventSchema, "BeaconBody": BeaconBodySchema}


def _body(limit: int) -> bytes:
    """The request body, refused (413) past ``limit`` bytes without reading it all."""
    declared = request.content_length
    if declared is not None and declared > limit:
        raise BodyRefused(413, "oversize", _too_big(limit))
    raw = request.stream.read(limit + 1)
    if len(raw) > limit:
        raise BodyRefused(413, "oversize", _too_big(limit))
    return raw


def _too_big(limit: int) -> str:
    return (f"The body is larger than the limit of {limit} bytes per beacon "
            "(api.beacon_max_bytes); send smaller batches.")
