"""recsdk inside a shop's own Flask app: the Flask extension.

A shop with a Flask backend adds recommendations in a few lines::

    from recsdk.flask_ext import RecSDKExtension

    recsdk_ext = RecSDKExtension()

    def create_app():
        app = Flask(__name__)
        app.config["RECSDK_CONFIG"] = "recsdk.toml"     # or a dict; RECSDK_DATABASE_URL...
        recsdk_ext.init_app(app)                        # or RecSDKExtension(app)
        return app

    @bp.get("/")
    def home():
        picks = recsdk_ext.recommend("home", k=8)       # never raises into the page
        return render_template("home.html", picks=picks)

Settings come from ``app.config``: ``RECSDK_CONFIG`` (a TOML path or a dict) and the
same ``RECSDK_*`` names the environment variables have (``RECSDK_DATABASE_URL``,
``RECSDK_REDIS_URL``, ``RECSDK_SEED``, ``RECSDK_API_KEY``, ``RECSDK_PLUGINS``), which
act like those variables and win over the process's own; the extension's keys are in
:data:`DEFAULTS`. The SDK lives in ``app.extensions["recsdk"]`` (where the REST views
look for it), the extension's per-app state beside it: the extension object keeps no
app, so one object serves several apps. The REST API is mounted in the same app by
default (``/api/v1``, ``/healthz``, ``/metrics``, ``/api/openapi.json``).

Views get :meth:`RecSDKExtension.recommend`, :meth:`~RecSDKExtension.similar_items`
and :meth:`~RecSDKExtension.track`, which fill in who is asking (a pluggable identity
callback; by default the logged-in user from ``flask.session`` and an anonymous
visitor id kept in a long-lived cookie) and never raise: a failing or slow SDK gives
an empty, degraded result and a log line, and the page renders without the widget.

The visitor cookie is the capture layer's (:mod:`recsdk.api.capture`): its value is a
signed visitor token for the anonymous visitor id, so the page's beacons and logging
redirect clicks prove the same visitor the lists were served to, and a visitor id read
from a list token cannot be replayed as someone else's cookie. Templates get
``recsdk_list_attrs(result)`` (with the list token), ``recsdk_item_attrs(item)`` and
``recsdk_click_url(result, item, to)``.
"""

from __future__ import annotations

import atexit
import difflib
import logging
import os
import re
import secrets
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import Flask, Response, current_app, g, request, session
from markupsafe import Markup, escape

from recsdk.api.app import register_api
from recsdk.api.capture import click_url, current_capture, script_url
from recsdk.api.extension import OWNED, init_sdk
from recsdk.capture.tokens import Visitor
from recsdk.config import ENVIRONMENT_VARIABLES
from recsdk.errors import ConfigurationError, NotTrainedError
from recsdk.log_throttle import ThrottledLog
from recsdk.sdk import RecSDK
from recsdk.storage.store import InsertReport
from recsdk.types import RecommendationResult, RecommendedItem

log = logging.getLogger(__name__)
_failures = ThrottledLog(log)

T = TypeVar("T")

#: ``app.extensions`` key of the extension's per-app state (the SDK is under "recsdk").
STATE = "recsdk.flask_ext"

#: The extension's own ``app.config`` keys and their defaults.
DEFAULTS: dict[str, Any] = {
    # mount the REST API (/api/v1/..., /healthz, /metrics, /api/openapi.json)
    "RECSDK_MOUNT_API": True,
    # bring the database schema up to date at init_app (False: refuse an old schema)
    "RECSDK_MIGRATE": True,
    # a page's budget for one recommend()/similar_items() call; None: no budget of its
    # own (each plugin still has pipeline.timeout_ms)
    "RECSDK_RECOMMEND_TIMEOUT_MS": None,
    # threads that run budgeted calls (a call that overran keeps its thread until done)
    "RECSDK_RECOMMEND_WORKERS": 16,
    # the anonymous visitor id: cookie name (None: recsdk's [api] visitor_cookie, which
    # the beacon and the logging redirect read) and lifetime (seconds)
    "RECSDK_VISITOR_COOKIE": None,
    "RECSDK_VISITOR_COOKIE_MAX_AGE": 365 * 24 * 3600,
    # where the default identity finds the logged-in user's id in flask.session
    "RECSDK_USER_SESSION_KEY": "user_id",
    # close an SDK the extension built when the process exits (flushes served lists)
    "RECSDK_CLOSE_AT_EXIT": True,
}
#: Settings of flask-smorest for the mounted API, read under the ``RECSDK_`` prefix.
SMOREST_PREFIXES = ("RECSDK_API_", "RECSDK_OPENAPI_")

#: What an anonymous visitor id looks like (what :func:`new_visitor_id` makes).
VISITOR_ID = re.compile(r"[A-Za-z0-9_-]{16,64}")
_COOKIE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")

#: HTML attributes a widget carries, read by the browser's feedback script: on the
#: list's root element (and its list token, when recsdk served it), and on each item.
LIST_ATTRIBUTES = ("data-recsdk-request-id", "data-recsdk-placement", "data-recsdk-variant")
TOKEN_ATTRIBUTE = "data-recsdk-token"
ITEM_ATTRIBUTES = ("data-recsdk-item-id", "data-recsdk-position")


@dataclass(frozen=True)
class Identity:
    """Who a recommendation or an event is for: a logged-in user, an anonymous
    visitor (``session_id``), or both (a logged-in user in this visitor's browser)."""

    user_id: str | None
    session_id: str | None

    @property
    def event_user_id(self) -> str | None:
        """The ``user_id`` of events: the user, or the anonymous visitor as one."""
        return self.user_id if self.user_id is not None else self.session_id


IdentityLoader = Callable[[], "Identity | tuple[str | None, str | None]"]


@dataclass
class _AppState:
    """What the extension keeps per app."""

    extension: RecSDKExtension
    sdk: RecSDK
    owned: bool
    timeout_s: float | None
    workers: int
    #: the visitor cookie's name and lifetime (seconds)
    cookie: str = "recsdk_visitor"
    cookie_max_age: int = 365 * 24 * 3600
    executor: ThreadPoolExecutor | None = None
    at_exit: Callable[[], None] | None = None
    closed: bool = False

    def __post_init__(self) -> None:
        self.lock = threading.Lock()

    def pool(self) -> ThreadPoolExecutor:
        with self.lock:
            if self.executor is None:
                self.executor = ThreadPoolExecutor(self.workers,
                                                   thread_name_prefix="recsdk-page")
            return self.executor

    def close(self) -> None:
        with self.lock:
            if self.closed:
                return
            self.closed = True
            executor, self.executor = self.executor, None
        if executor is not None:  # calls that overran finish on their own
            executor.shutdown(wait=False, cancel_futures=True)
        if self.at_exit is not None:
            atexit.unregister(self.at_exit)
        if self.owned:
            self.sdk.close()


class RecSDKExtension:
    """The Flask extension: ``RecSDKExtension(app)`` or ``ext.init_app(app)``."""

    def __init__(self, app: Flask | None = None, *, sdk: RecSDK | None = None,
                 environ: Mapping[str, str] | None = None) -> None:
        """``sdk``: serve this SDK (it stays the caller's to close) instead of building
        one from ``app.config``; ``environ``: the variables to read instead of
        ``os.environ`` (tests pass ``{}``)."""
        self._environ = environ
        self._identity_loader: IdentityLoader | None = None
        if app is not None:
            self.init_app(app, sdk=sdk)

    # ---- set-up ----------------------------------------------------------------------

    def init_app(self, app: Flask, *, sdk: RecSDK | None = None,
                 environ: Mapping[str, str] | None = None) -> None:
        """Build (or take) the SDK, keep it in ``app.extensions`` and mount the API;
        ``environ`` replaces the constructor's for this app."""
        if STATE in app.extensions:
            raise ConfigurationError("recsdk is already initialised on this app "
                                     f"({app.name!r}); call init_app once per app")
        for key, value in DEFAULTS.items():
            app.config.setdefault(key, value)
        check_config(app.config)
        owned = sdk is None
        if sdk is None:
            environ = self._environ if environ is None else environ
            config, variables = sdk_arguments(app.config,
                                              os.environ if environ is None else environ)
            sdk = RecSDK(config, environ=variables,
                         migrate=bool(app.config["RECSDK_MIGRATE"]))
        timeout_ms = app.config["RECSDK_RECOMMEND_TIMEOUT_MS"]
        state = _AppState(self, sdk, owned,
                          None if timeout_ms is None else float(timeout_ms) / 1000.0,
                          int(app.config["RECSDK_RECOMMEND_WORKERS"]))
        init_sdk(app, sdk, owned)
        app.extensions[STATE] = state
        try:
            state.cookie = visitor_cookie_name(app.config, sdk.settings.api["visitor_cookie"])
            state.cookie_max_age = int(app.config["RECSDK_VISITOR_COOKIE_MAX_AGE"])
            if app.config["RECSDK_MOUNT_API"]:
                if not sdk.settings.api["api_key"]:
                    log.warning("recsdk: the REST API is mounted with no API key: its "
                                "ingestion and admin endpoints are open to anyone who can "
                                "reach the app (set RECSDK_API_KEY)")
                register_api(app, sdk, mounted=True)
        except BaseException:
            state.close()
            raise
        app.after_request(_set_visitor_cookie)
        app.add_template_global(list_attributes, "recsdk_list_attrs")
        app.add_template_global(item_attributes, "recsdk_item_attrs")
        app.add_template_global(click_attribute_url, "recsdk_click_url")
        app.add_template_global(script_url, "recsdk_script_url")
        if owned and app.config["RECSDK_CLOSE_AT_EXIT"]:
            state.at_exit = state.close
            atexit.register(state.at_exit)

    def identity_loader(self, loader: IdentityLoader) -> IdentityLoader:
        """Decorator: ``loader()`` says who the current request is for, as an
        :class:`Identity` or a ``(user_id, session_id)`` pair."""
        self._identity_loader = loader
        return loader

    @staticmethod
    def sdk(app: Flask | None = None) -> RecSDK:
        """The SDK of ``app`` (default: the current app)."""
        return _state(app).sdk

    def close(self, app: Flask | None = None) -> None:
        """Release what the app holds: the page threads, and the SDK if the extension
        built it (an SDK passed in stays the caller's). A second call does nothing."""
        app = app or current_app._get_current_object()  # type: ignore[attr-defined]
        state = app.extensions.get(STATE)
        if state is not None:
            state.close()
            app.extensions[OWNED] = False  # recsdk.api.close_app must not close it again

    # ---- who is asking ---------------------------------------------------------------

    def identity(self) -> Identity:
        """The current request's user and anonymous visitor (the identity callback's
        answer, else the logged-in user in ``flask.session`` and the visitor cookie)."""
        if self._identity_loader is not None:
            got = self._identity_loader()
            if isinstance(got, Identity):
                return got
            user_id, session_id = got
            return Identity(user_id, session_id)
        user = session.get(current_app.config["RECSDK_USER_SESSION_KEY"])
        return Identity(None if user is None else str(user), visitor_id())

    # ---- helpers for views (never raise) -----------------------------------------------

    def recommend(self, placement: str = "default", k: int | None = None, *,
                  cart: Sequence[str] | None = None, candidates: Sequence[str] | None = None,
                  exclude: Iterable[str] = (), context: Mapping[str, Any] | None = None,
                  identity: Identity | None = None) -> RecommendationResult:
        """``sdk.recommend`` for the current visitor at ``placement``; on any failure
        (or past ``RECSDK_RECOMMEND_TIMEOUT_MS``) an empty degraded result, logged.
        A call that overran its budget still finishes in the background, and its list
        is logged as served although the page did not show it.

        ``cart``: the items in the visitor's cart (the ``cart`` placement's context);
        ``candidates``: rank only these (a category's shelf); ``exclude``: never these.
        """
        state = _state()
        try:
            who = identity or self.identity()
        except Exception as exc:  # a broken identity callback must not break the page
            return _empty(state, placement, "identity", exc)
        extra = dict(context or {})
        if cart:
            extra["cart"] = [str(i) for i in cart]
        return _guarded(state, placement, "recommend", lambda: state.sdk.recommend(
            who.user_id, session_id=who.session_id, placement=placement, k=k,
            context=extra or None, candidates=candidates, exclude=exclude))

    def similar_items(self, item_id: str, k: int = 10, *,
                      placement: str = "similar") -> RecommendationResult:
        """``sdk.similar_items``; an empty degraded result on failure (or before any
        model is trained), logged."""
        state = _state()
        return _guarded(state, placement, "similar_items",
                        lambda: state.sdk.similar_items(item_id, k, placement=placement))

    def track(self, type: str, item_id: str, *, value: float | None = None,
              context: Mapping[str, Any] | None = None, event_id: str | None = None,
              identity: Identity | None = None) -> InsertReport | None:
        """Store one event of the current visitor (``view``, ``add_to_cart``,
        ``purchase`` with its revenue as ``value``...); None, logged, when it fails.

        An anonymous visitor's events carry the visitor id as ``user_id`` and as
        ``session_id``; a logged-in user's, the user id and the visitor id.
        """
        state = _state()
        try:
            who = identity or self.identity()
            event: dict[str, Any] = {"user_id": who.event_user_id, "item_id": item_id,
                                     "type": type, "session_id": who.session_id}
            for key, extra in (("value", value), ("context", context),
                               ("event_id", event_id)):
                if extra is not None:
                    event[key] = extra
            return state.sdk.track(event)
        except Exception as exc:
            _failures.warning(("track", type), f"recsdk: could not store a {type!r} event "
                              f"for item {item_id!r}: {type_name(exc)}: {exc}", exc)
            return None

    # ---- feedback capture from the page (never raise) ---------------------------------

    def list_token(self, result: RecommendationResult, *,
                   identity: Identity | None = None) -> str | None:
        """The list token a page needs to report on ``result`` (``data-recsdk-token``):
        bound to this browser, the visitor the visitor cookie proves (the anonymous
        visitor id, also when a user is logged in; the feedback row still gets the
        list's user). None for a list recsdk did not serve (an empty fallback), or when
        the token cannot be made (logged)."""
        if not result.request_id:
            return None
        try:
            who = identity or self.identity()
            if who.session_id is not None:
                visitor = Visitor(session_id=who.session_id)
            elif who.user_id is not None:
                visitor = Visitor(user_id=who.user_id)
            else:
                return None
            made: dict[tuple[str, str], str] = g.setdefault("recsdk_list_tokens", {})
            key = (result.request_id, visitor.key)
            if key not in made:
                made[key] = current_capture().tokens.list_token(result.request_id, visitor)
            g.recsdk_prove = visitor  # the response's cookie must prove this visitor
            return made[key]
        except Exception as exc:
            _failures.warning(("list_token", type(exc)), "recsdk: no list token for "
                              f"{result.placement!r}: {type_name(exc)}: {exc}", exc)
            return None

    def click_url(self, result: RecommendationResult, item: RecommendedItem, to: str) -> str:
        """A recommended item's link through the logging redirect (``/api/v1/r``), which
        stores the click when the page runs no script (recsdk.js logs it itself and
        links straight to ``to``); ``to`` itself when there is no token or no mounted
        API."""
        token = self.list_token(result)
        if token is None or not current_app.config["RECSDK_MOUNT_API"]:
            return to
        try:
            return click_url(token, item.item_id, item.position, to)
        except Exception as exc:
            _failures.warning(("click_url", type(exc)), "recsdk: no logging redirect for "
                              f"{result.placement!r}: {type_name(exc)}: {exc}", exc)
            return to


# ---- settings ---------------------------------------------------------------------------


def check_config(config: Mapping[str, Any]) -> None:
    """Refuse a misspelt ``RECSDK_*`` key or an extension setting of the wrong kind."""
    known = {*DEFAULTS, *ENVIRONMENT_VARIABLES}
    for key in config:
        if (key.startswith("RECSDK_") and key not in known
                and not key.startswith(SMOREST_PREFIXES)):
            close = difflib.get_close_matches(key, sorted(known), n=1)
            hint = f" ({close[0]}?)" if close else ""
            raise ConfigurationError(
                f"app.config[{key!r}] is not a recsdk setting{hint}; known: "
                f"{', '.join(sorted(known))} (and flask-smorest's as RECSDK_API_*, "
                "RECSDK_OPENAPI_*)")
    timeout = config["RECSDK_RECOMMEND_TIMEOUT_MS"]
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(
            timeout, int | float) or not timeout > 0):
        raise ConfigurationError("RECSDK_RECOMMEND_TIMEOUT_MS must be a positive number of "
                                 f"milliseconds or None, got {timeout!r}")
    for key, low, high in (("RECSDK_RECOMMEND_WORKERS", 1, 256),
                           ("RECSDK_VISITOR_COOKIE_MAX_AGE", 1, 10 * 365 * 24 * 3600)):
        value = config[key]
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ConfigurationError(f"{key} must be a whole number from {low} to {high}, "
                                     f"got {value!r}")
    cookie = config["RECSDK_VISITOR_COOKIE"]
    if cookie is not None and (not isinstance(cookie, str)
                               or not _COOKIE_NAME.fullmatch(cookie)):
        raise ConfigurationError("RECSDK_VISITOR_COOKIE must be a cookie name (letters, "
                                 f"digits, '_', '.', '-'; 1 to 64) or None, got {cookie!r}")
    key = config["RECSDK_USER_SESSION_KEY"]
    if not isinstance(key, str) or not key:
        raise ConfigurationError(f"RECSDK_USER_SESSION_KEY must be a non-empty string, "
                                 f"got {key!r}")


def visitor_cookie_name(config: Mapping[str, Any], capture_cookie: str) -> str:
    """The visitor cookie's name: recsdk's ``[api] visitor_cookie``, which the beacon and
    the logging redirect read to prove the visitor; a different ``RECSDK_VISITOR_COOKIE``
    with the API mounted would leave every page's feedback unproven, so it is refused."""
    name = config["RECSDK_VISITOR_COOKIE"]
    if name is None:
        return capture_cookie
    if name != capture_cookie and config["RECSDK_MOUNT_API"]:
        raise ConfigurationError(
            f"RECSDK_VISITOR_COOKIE is {name!r} but recsdk's [api] visitor_cookie is "
            f"{capture_cookie!r}: the beacon and the logging redirect prove the visitor by "
            "[api] visitor_cookie, so pages would report feedback nobody can prove. Leave "
            "RECSDK_VISITOR_COOKIE unset, or set [api] visitor_cookie to the same name.")
    return name


def sdk_arguments(config: Mapping[str, Any], environ: Mapping[str, str]
                  ) -> tuple[Mapping[str, Any] | str | None, dict[str, str]]:
    """``RecSDK``'s ``config`` and ``environ`` for an app's settings.

    ``RECSDK_CONFIG`` (a TOML path or a dict) becomes ``config``; the other
    :data:`~recsdk.config.ENVIRONMENT_VARIABLES` found in ``app.config`` replace the
    process's variables of the same names, so that :func:`recsdk.config.load_settings`
    reads them by its one rule (None there means "not set here").
    """
    env = dict(environ)
    source = config.get("RECSDK_CONFIG")
    if "RECSDK_CONFIG" in config:
        env.pop("RECSDK_CONFIG", None)  # the app's choice replaces the process's
    if isinstance(source, os.PathLike):
        source = os.fspath(source)
    if source is not None and not isinstance(source, str | Mapping):
        raise ConfigurationError("RECSDK_CONFIG must be the path of a TOML file or a dict "
                                 f"of settings, got {type(source).__name__}")
    for name in ENVIRONMENT_VARIABLES:
        if name != "RECSDK_CONFIG" and name in config:
            env[name] = _as_variable(name, config[name])
    return source, env


def _as_variable(name: str, value: Any) -> str:
    """An ``app.config`` value as the text its environment variable would hold."""
    if value is None:
        return ""
    if isinstance(value, bool):
        raise ConfigurationError(f"{name} must be text, got a boolean")
    if isinstance(value, str):
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if name == "RECSDK_SEED" and isinstance(value, int):
        return str(value)
    if name == "RECSDK_PLUGINS" and isinstance(value, list | tuple) and all(
            isinstance(v, str) for v in value):
        return ",".join(value)
    raise ConfigurationError(f"{name} must be text, got {type(value).__name__} {value!r}")


# ---- per-request helpers ---------------------------------------------------------------


def _state(app: Flask | None = None) -> _AppState:
    app = app or current_app
    try:
        return app.extensions[STATE]
    except KeyError:
        raise RuntimeError("recsdk is not initialised on this app: call "
                           "RecSDKExtension().init_app(app) first") from None


def current_extension() -> RecSDKExtension:
    """The extension initialised on the current app (for code without the object)."""
    return _state().extension


def new_visitor_id() -> str:
    """A fresh anonymous visitor id: 128 random bits, URL-safe."""
    return secrets.token_urlsafe(16)


def visitor_id() -> str:
    """The anonymous visitor id of this browser, from its cookie, or a new one that
    the response sets. The cookie holds a visitor token signed by the capture layer
    (``[api] beacon_secret``); one that does not verify, has expired or names a user
    rather than an anonymous visitor is replaced, not trusted."""
    if "recsdk_visitor" in g:
        return g.recsdk_visitor
    proven = _cookie_visitor(_state())
    if proven is not None and proven.session_id is not None and VISITOR_ID.fullmatch(
            proven.session_id):
        value = proven.session_id
    else:
        value = new_visitor_id()
        g.recsdk_prove = Visitor(session_id=value)
    g.recsdk_visitor = value
    return value


def _cookie_visitor(state: _AppState) -> Visitor | None:
    """The visitor this request's visitor cookie proves (None: none, or not ours)."""
    return current_capture().proven_visitor(request.cookies.get(state.cookie))


def _set_visitor_cookie(response: Response) -> Response:
    """After each request: give the visitor cookie when the page identified, or made a
    list token for, a visitor the request's cookie does not prove."""
    visitor: Visitor | None = g.pop("recsdk_prove", None)
    if visitor is None:
        return response
    state = _state()
    if _cookie_visitor(state) == visitor:
        return response
    token = current_capture().tokens.visitor_token(visitor, ttl_s=state.cookie_max_age)
    response.set_cookie(state.cookie, token, max_age=state.cookie_max_age, path="/",
                        httponly=True, samesite="Lax",
                        secure=bool(current_app.config["SESSION_COOKIE_SECURE"])
                        or request.is_secure)
    return response


def _guarded(state: _AppState, placement: str, call: str,
             run: Callable[[], RecommendationResult]) -> RecommendationResult:
    """``run()``, within the page budget; an empty degraded result when it fails."""
    try:
        if state.timeout_s is None:
            return run()
        future = state.pool().submit(run)
        try:
            return future.result(timeout=state.timeout_s)
        except FutureTimeout:
            future.cancel()
            raise TimeoutError(f"no answer within RECSDK_RECOMMEND_TIMEOUT_MS="
                               f"{state.timeout_s * 1000:g}") from None
    except NotTrainedError as exc:  # a new shop before its first training: expected
        return _empty(state, placement, call, exc, quiet=True)
    except Exception as exc:
        return _empty(state, placement, call, exc)


def _empty(state: _AppState, placement: str, call: str, exc: BaseException,
           quiet: bool = False) -> RecommendationResult:
    """The answer a widget gets when recsdk could not answer: no items, degraded."""
    reason = f"{call}: {type_name(exc)}: {exc}"
    if not quiet:
        _failures.warning((placement, call, type(exc)),
                          f"recsdk: {reason} (placement {placement!r}); the page shows no "
                          "list", exc if not isinstance(exc, TimeoutError) else None)
    try:
        state.sdk.telemetry.recommendations.labels(placement=placement, variant="default",
                                                   outcome="error").inc()
        config_hash = state.sdk.config_hash
    except Exception:  # telemetry must not break the fallback either
        config_hash = ""
    return RecommendationResult(request_id="", items=[], placement=placement,
                                variant="default", plugins=[], config_hash=config_hash,
                                degraded=True, failures=[reason])


def type_name(exc: BaseException) -> str:
    return type(exc).__name__


# ---- template helpers ------------------------------------------------------------------


def list_attributes(result: RecommendationResult) -> Markup:
    """The attributes of a widget's root element (``{{ recsdk_list_attrs(result) }}``):
    request id, placement, variant and, for a list recsdk served, its list token (what
    recsdk.js needs to report impressions and clicks)."""
    values = (result.request_id, result.placement, result.variant)
    pairs = list(zip(LIST_ATTRIBUTES, values, strict=True))
    token = current_extension().list_token(result) if result.request_id else None
    if token is not None:
        pairs.append((TOKEN_ATTRIBUTE, token))
    return Markup(" ".join(f'{name}="{escape(value)}"' for name, value in pairs))


def click_attribute_url(result: RecommendationResult, item: RecommendedItem, to: str) -> str:
    """A recommended item's href (``{{ recsdk_click_url(result, item, to) }}``): the
    logging redirect to ``to``, so that a click without JavaScript is stored too."""
    return current_extension().click_url(result, item, to)


def item_attributes(item: RecommendedItem) -> Markup:
    """The attributes of one item's link (``{{ recsdk_item_attrs(item) }}``)."""
    values = (item.item_id, item.position)
    return Markup(" ".join(f'{name}="{escape(value)}"'
                           for name, value in zip(ITEM_ATTRIBUTES, values, strict=True)))
