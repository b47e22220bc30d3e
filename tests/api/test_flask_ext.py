"""The Flask extension: settings from app.config, the SDK in app.extensions, the REST
API beside a shop's own pages, and view helpers that never break a page."""

from __future__ import annotations

import html
import json
import logging
import re
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Blueprint, Flask, render_template_string, request, session
from sqlalchemy import select

from recsdk import RecSDK
from recsdk.api import close_app
from recsdk.api.capture import current_capture
from recsdk.capture.tokens import Tokens, Visitor
from recsdk.errors import ConfigurationError
from recsdk.flask_ext import (
    VISITOR_ID,
    Identity,
    RecSDKExtension,
    current_extension,
    sdk_arguments,
)
from recsdk.storage import models
from recsdk.types import RecommendationResult
from tests.api.conftest import API_KEY
from tests.api.helpers import threads_left
from tests.core.shop import fill

FAST = {"device": "cpu", "pipeline": {"timeout_ms": 10_000}}


def shop_app(**config: Any) -> Flask:
    """A stand-in for a shop's own app: a page, a form, its own 404 and 'admin'."""
    app = Flask("a_shop")
    app.config.update(SECRET_KEY="test", **config)
    admin = Blueprint("admin", __name__, url_prefix="/admin")

    @admin.get("/")
    def dashboard() -> str:
        return "the shop's own admin"

    app.register_blueprint(admin)

    @app.errorhandler(404)
    def not_found(error: Exception) -> tuple[str, int]:
        return "<h1>The shop's page is not here</h1>", 404

    @app.post("/form")
    def form() -> str:
        return str(len(request.get_data()))

    @app.get("/login/<user_id>")
    def login(user_id: str) -> str:
        session["user_id"] = user_id
        return "ok"

    return app


@pytest.fixture
def copy_db(tmp_path: Path, migrated_sqlite: Path) -> Callable[[str], str]:
    def make(name: str = "shop.db") -> str:
        shutil.copyfile(migrated_sqlite, tmp_path / name)
        return f"sqlite:///{tmp_path / name}"
    return make


@pytest.fixture
def closing() -> Any:
    """Apps built in a test, closed at its end."""
    built: list[tuple[RecSDKExtension, Flask]] = []
    yield built
    for ext, app in built:
        ext.close(app)


def build(closing: list[tuple[RecSDKExtension, Flask]], url: str, *,
          settings: dict[str, Any] | None = None, sdk: RecSDK | None = None,
          **config: Any) -> tuple[RecSDKExtension, Flask]:
    app = shop_app(RECSDK_CONFIG={"database_url": url, **FAST, **(settings or {})},
                   RECSDK_MIGRATE=False, RECSDK_CLOSE_AT_EXIT=False, **config)
    ext = RecSDKExtension(environ={})
    ext.init_app(app, sdk=sdk)
    closing.append((ext, app))
    return ext, app


# ---- set-up, settings and ownership -------------------------------------------------------


def test_init_app_builds_the_sdk_from_app_config_and_closes_it(copy_db, closing) -> None:
    before = set(threading.enumerate())
    ext, app = build([], copy_db(), settings={"api": {"max_batch": 5}})
    sdk = app.extensions["recsdk"]
    assert isinstance(sdk, RecSDK) and ext.sdk(app) is sdk
    assert sdk.settings.api["max_batch"] == 5
    client = app.test_client()
    assert client.post("/api/v1/events", json={"user_id": "u", "item_id": "i",
                                               "type": "view"}).status_code == 201
    assert client.get("/api/v1/recommendations?user_id=u").status_code == 200
    assert client.get("/healthz").json["status"] == "ok"
    assert "/api/v1/recommendations" in client.get("/api/openapi.json").json["paths"]
    ext.close(app)
    assert not sdk.request_log._thread.is_alive()
    assert threads_left(before) == []
    ext.close(app)  # a second close does nothing
    close_app(app)  # nor does the API's own close afterwards


def test_the_constructor_form_and_a_given_sdk_that_stays_the_callers(make_sdk,
                                                                     closing) -> None:
    sdk = make_sdk(**FAST)
    app = shop_app(RECSDK_CLOSE_AT_EXIT=False)
    ext = RecSDKExtension(app, sdk=sdk)
    assert app.extensions["recsdk"] is sdk
    ext.close(app)
    assert sdk.store.ping() and sdk.request_log._thread.is_alive()


def test_app_config_keys_act_like_the_environment_variables(copy_db, tmp_path: Path) -> None:
    file_url, env_url, app_url = copy_db("file.db"), copy_db("env.db"), copy_db("app.db")
    toml = tmp_path / "recsdk.toml"
    toml.write_text(f'database_url = "{file_url}"\nseed = 3\n')
    config, environ = sdk_arguments({"RECSDK_CONFIG": str(toml)},
                                    {"RECSDK_DATABASE_URL": env_url, "HOME": "/x"})
    assert (config, environ["RECSDK_DATABASE_URL"]) == (str(toml), env_url)
    config, environ = sdk_arguments(
        {"RECSDK_CONFIG": toml, "RECSDK_DATABASE_URL": app_url, "RECSDK_SEED": 7,
         "RECSDK_PLUGINS": ["popularity", "trending"], "RECSDK_REDIS_URL": None},
        {"RECSDK_DATABASE_URL": env_url, "RECSDK_REDIS_URL": "redis://elsewhere",
         "RECSDK_CONFIG": "/not/this.toml"})
    assert config == str(toml)
    assert environ == {"RECSDK_DATABASE_URL": app_url, "RECSDK_SEED": "7",
                       "RECSDK_PLUGINS": "popularity,trending", "RECSDK_REDIS_URL": ""}
    from recsdk.config import load_settings

    settings = load_settings(config, environ=environ)
    assert (settings.database_url, settings.seed, settings.redis_url) == (app_url, 7, None)
    assert {p.name for p in settings.plugins} == {"popularity", "trending", "filters"}


def test_the_api_key_from_app_config_guards_the_mounted_writes(copy_db, closing) -> None:
    _, app = build(closing, copy_db(), RECSDK_API_KEY=API_KEY)
    client = app.test_client()
    event = {"user_id": "u", "item_id": "i", "type": "view"}
    refused = client.post("/api/v1/events", json=event)
    assert refused.status_code == 401 and "Missing API key" in refused.json["message"]
    assert client.post("/api/v1/events", json=event,
                       headers={"X-API-Key": API_KEY}).status_code == 201


@pytest.mark.parametrize(("config", "message"), [
    ({"RECSDK_DATABSE_URL": "sqlite://"},
     "app.config['RECSDK_DATABSE_URL'] is not a recsdk setting (RECSDK_DATABASE_URL?)"),
    ({"RECSDK_RECOMMEND_TIMEOUT_MS": -5}, "RECSDK_RECOMMEND_TIMEOUT_MS must be a positive"),
    ({"RECSDK_RECOMMEND_TIMEOUT_MS": "fast"}, "RECSDK_RECOMMEND_TIMEOUT_MS must be"),
    ({"RECSDK_RECOMMEND_WORKERS": 0}, "RECSDK_RECOMMEND_WORKERS must be a whole number"),
    ({"RECSDK_VISITOR_COOKIE": "a cookie;"}, "RECSDK_VISITOR_COOKIE must be a cookie name"),
    ({"RECSDK_VISITOR_COOKIE_MAX_AGE": 1.5}, "RECSDK_VISITOR_COOKIE_MAX_AGE must be"),
    ({"RECSDK_USER_SESSION_KEY": ""}, "RECSDK_USER_SESSION_KEY must be a non-empty"),
    ({"RECSDK_CONFIG": 42}, "RECSDK_CONFIG must be the path of a TOML file or a dict"),
    ({"RECSDK_SEED": True}, "RECSDK_SEED must be text, got a boolean"),
    ({"RECSDK_SEED": "abc"}, "RECSDK_SEED must be an integer, got 'abc'"),
    ({"RECSDK_PLUGINS": {"popularity": {}}}, "RECSDK_PLUGINS must be text, got dict"),
    ({"RECSDK_CONFIG": "/no/such/recsdk.toml"}, "/no/such/recsdk.toml does not exist"),
])
def test_a_bad_setting_stops_init_app_naming_it(config: dict[str, Any], message: str) -> None:
    app = shop_app(**config)
    with pytest.raises(ConfigurationError) as caught:
        RecSDKExtension(app, environ={})
    assert message in str(caught.value)
    assert "recsdk" not in app.extensions


def test_init_app_twice_on_one_app_is_refused(make_sdk) -> None:
    sdk = make_sdk(**FAST)
    app = shop_app()
    ext = RecSDKExtension(app, sdk=sdk)
    with pytest.raises(ConfigurationError, match="already initialised"):
        ext.init_app(app, sdk=sdk)


def test_without_init_app_the_helpers_say_so() -> None:
    with shop_app().test_request_context("/"), pytest.raises(RuntimeError,
                                                              match="not initialised"):
        RecSDKExtension().recommend("home")


# ---- the API beside the shop's pages ------------------------------------------------------


def test_the_shops_pages_keep_their_own_errors_and_names(copy_db, closing) -> None:
    _, app = build(closing, copy_db())
    client = app.test_client()
    page = client.get("/no-such-page")
    assert page.status_code == 404 and page.text.startswith("<h1>The shop's page")
    assert client.get("/admin/").text == "the shop's own admin"
    answer = client.get("/api/v1/recommendations")  # no user: the API's JSON 400
    assert answer.status_code == 400 and "user_id or session_id" in answer.json["message"]
    bad = client.post("/api/v1/events", data="{nope", content_type="application/json")
    assert bad.status_code == 400 and "not valid JSON" in bad.json["message"]
    assert client.get("/api/v1/items/i1/similar").json["code"] == 409  # not trained
    assert {"recsdk_serving", "recsdk_ingest", "recsdk_admin", "recsdk_ops",
            "admin"} <= set(app.blueprints)


def test_the_api_body_limit_applies_to_the_api_only(copy_db, closing) -> None:
    _, app = build(closing, copy_db(), settings={"api": {"max_content_length": 1024}})
    client = app.test_client()
    big = b"[" + b",".join([b'{"user_id":"u","item_id":"i","type":"view"}'] * 40) + b"]"
    refused = client.post("/api/v1/events", data=big, content_type="application/json")
    assert refused.status_code == 413
    assert "limit of 1024 bytes" in refused.json["message"]
    assert client.post("/form", data=big).text == str(len(big))  # the shop's own limit


def test_the_api_can_stay_unmounted(copy_db, closing) -> None:
    _, app = build(closing, copy_db(), RECSDK_MOUNT_API=False)
    assert app.test_client().get("/api/v1/recommendations?user_id=u").status_code == 404
    assert not any(name.startswith("recsdk_") for name in app.blueprints)


# ---- the view helpers ---------------------------------------------------------------------


@pytest.fixture
def trained(copy_db, closing) -> tuple[RecSDKExtension, Flask]:
    ext, app = build(closing, copy_db(), settings={"plugins": {"popularity": {}}})
    fill(ext.sdk(app))
    ext.sdk(app).fit()
    return ext, app


def test_recommend_serves_the_logged_in_user_or_the_anonymous_visitor(trained) -> None:
    ext, app = trained
    seen: list[Any] = []

    @app.get("/home")
    def home() -> str:
        result = ext.recommend("home", k=3)
        seen.append((ext.identity(), result))
        return render_template_string(
            "<ul {{ recsdk_list_attrs(r) }}>{% for i in r.items %}"
            "<li><a {{ recsdk_item_attrs(i) }}>{{ i.item_id }}</a></li>{% endfor %}</ul>",
            r=result)

    client = app.test_client()
    first = client.get("/home")
    cookie = first.headers["Set-Cookie"]
    assert cookie.startswith("recsdk_visitor=") and "Max-Age=31536000" in cookie
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    visitor = proven_visitor(app, client.get_cookie("recsdk_visitor").value)
    assert VISITOR_ID.fullmatch(visitor)
    (who, result), = seen
    assert who == Identity(None, visitor) and len(result.items) == 3
    assert not result.degraded and result.request_id
    assert f'data-recsdk-request-id="{result.request_id}"' in first.text
    assert 'data-recsdk-placement="home" data-recsdk-variant="default"' in first.text
    assert f'data-recsdk-item-id="{result.items[0].item_id}" data-recsdk-position="1"' in (
        first.text)

    assert "Set-Cookie" not in client.get("/home").headers  # the same visitor returns
    client.get("/login/u3")
    client.get("/home")
    assert [w for w, _ in seen[1:]] == [Identity(None, visitor), Identity("u3", visitor)]
    sdk = ext.sdk(app)
    sdk.request_log.flush()
    served = sdk.store.request_info([r.request_id for _, r in seen])
    assert [(served[r.request_id]["user_id"]) for _, r in seen] == [None, None, "u3"]


def proven_visitor(app: Flask, cookie: str) -> str | None:
    """The anonymous visitor id a visitor cookie's value proves (None: not a visitor's)."""
    with app.app_context():
        proven = current_capture().proven_visitor(cookie)
    return None if proven is None else proven.session_id


def test_a_forged_visitor_cookie_is_replaced(trained) -> None:
    """The cookie is a visitor token signed by the capture layer: a raw id (even one
    read from a list token), another secret's token, a user's or an expired one is
    not this visitor's, and gets a new anonymous visitor."""
    ext, app = trained

    @app.get("/who")
    def who() -> str:
        return ext.identity().session_id or ""

    other = Tokens("another secret of thirty-two chars!", 600, 600)
    with app.app_context():
        ours = current_capture().tokens
    client = app.test_client()
    for forged in ("short", "x" * 65, "../../etc/passwd", "a b c d e f g h i j",
                   "rFULvOajTA1lyNHNE_NjKw",
                   other.visitor_token(Visitor(session_id="rFULvOajTA1lyNHNE_NjKw")),
                   ours.visitor_token(Visitor(user_id="u1")),
                   ours.visitor_token(Visitor(session_id="rFULvOajTA1lyNHNE_NjKw"),
                                      now=time.time() - 10**6, ttl_s=60)):
        client.set_cookie("recsdk_visitor", forged)
        answer = client.get("/who")
        assert answer.text != "rFULvOajTA1lyNHNE_NjKw" and VISITOR_ID.fullmatch(answer.text)
        given = answer.headers["Set-Cookie"].split(";")[0].removeprefix("recsdk_visitor=")
        assert proven_visitor(app, given) == answer.text, forged
    client.set_cookie("recsdk_visitor", ours.visitor_token(
        Visitor(session_id="rFULvOajTA1lyNHNE_NjKw")))
    answer = client.get("/who")  # a token of ours is this visitor: kept, not renewed
    assert answer.text == "rFULvOajTA1lyNHNE_NjKw" and "Set-Cookie" not in answer.headers


LIST_PAGE = ('<ul {{ recsdk_list_attrs(r) }}>{% for i in r.items %}<li {{ recsdk_item_attrs(i) }}>'
             '<a href="{{ recsdk_click_url(r, i, "/item/" ~ i.item_id) }}">{{ i.item_id }}</a>'
             '</li>{% endfor %}</ul><script src="{{ recsdk_script_url() }}" defer></script>')


def test_a_page_reports_on_its_lists_as_the_visitor_the_cookie_proves(trained) -> None:
    """The extension's visitor and the capture layer's are one: a page's list token
    and the visitor cookie let its beacon and its logging-redirect links be stored,
    for an anonymous visitor and for a logged-in user alike."""
    ext, app = trained

    @app.get("/home")
    def home() -> str:
        return render_template_string(LIST_PAGE, r=ext.recommend("home", k=3))

    served = {}
    for user in (None, "u3"):
        client = app.test_client()
        if user is not None:
            client.get(f"/login/{user}")
        page = client.get("/home").text
        attrs = dict(re.findall(r'(data-recsdk-[\w-]+)="([^"]*)"', page.split(">", 1)[0]))
        rid, token = attrs["data-recsdk-request-id"], attrs["data-recsdk-token"]
        served[rid] = user
        assert '<script src="/api/v1/static/recsdk.js" defer>' in page
        items = re.findall(r'data-recsdk-item-id="([^"]+)" data-recsdk-position="(\d)"', page)
        hrefs = [html.unescape(h) for h in re.findall(r'href="([^"]+)"', page)]
        assert len(items) == len(hrefs) == 3
        assert hrefs[1].startswith("/api/v1/r?")
        assert hrefs[1].endswith(f"&to=/item/{items[1][0]}")
        answer = client.post("/api/v1/beacon", content_type="text/plain", data=json.dumps(
            [{"token": token, "type": "impression", "item_id": items[0][0], "position": 1}]))
        assert answer.json["accepted"] == 1, answer.json
        assert client.get(hrefs[1]).headers["Location"] == f"/item/{items[1][0]}"
    fb = models.Feedback.__table__
    with ext.sdk(app).store.engine.connect() as conn:
        rows = conn.execute(select(fb.c.request_id, fb.c.type, fb.c.position, fb.c.user_id)
                            .order_by(fb.c.id)).all()
    assert [(r.type, r.position, r.user_id) for r in rows] == [
        ("impression", 1, None), ("click", 2, None), ("impression", 1, "u3"),
        ("click", 2, "u3")]
    assert [served[r.request_id] for r in rows] == [None, None, "u3", "u3"]


def test_a_list_token_follows_the_identity_callback(trained) -> None:
    ext, app = trained
    ext.identity_loader(lambda: ("u5", "tab-7"))

    @app.get("/token")
    def token() -> str:
        return ext.list_token(ext.recommend("default", k=2)) or ""

    client = app.test_client()
    answer = client.get("/token")
    with app.app_context():
        tokens = current_capture().tokens
        assert tokens.read_list(answer.text).visitor == Visitor(session_id="tab-7")
    assert proven_visitor(app, client.get_cookie("recsdk_visitor").value) == "tab-7"
    assert "Set-Cookie" not in client.get("/token").headers  # proven now
    empty = RecommendationResult("", [], "home", "default", [], "")  # a failed answer
    with app.test_request_context("/"):
        assert ext.list_token(empty) is None
        assert ext.click_url(empty, None, "/item/1") == "/item/1"  # type: ignore[arg-type]


def test_the_mounted_capture_endpoints_keep_their_guards_and_headers(copy_db,
                                                                     closing) -> None:
    """Mounted, the capture blueprint is ``recsdk_capture``: issuing a visitor token
    still needs the API key, and widget and beacon answers stay readable by pages of
    other sites."""
    ext, app = build(closing, copy_db(), settings={"plugins": {"popularity": {}}},
                     RECSDK_API_KEY=API_KEY)
    fill(ext.sdk(app))
    ext.sdk(app).fit()
    client = app.test_client()
    asked = {"user_id": "u1"}
    assert client.post("/api/v1/visitor-token", json=asked).status_code == 401
    assert client.post("/api/v1/visitor-token", json=asked,
                       headers={"X-API-Key": API_KEY}).status_code == 200
    widget = client.get("/api/v1/widget/recommendations?k=2")
    assert widget.status_code == 200 and len(widget.json["items"]) == 2
    assert widget.headers["Access-Control-Allow-Origin"] == "*"
    beacon = client.post("/api/v1/beacon", data="[]", content_type="text/plain")
    assert beacon.status_code == 400 and beacon.headers["Access-Control-Allow-Origin"] == "*"


def test_a_visitor_cookie_the_beacon_does_not_read_is_refused(copy_db, closing) -> None:
    with pytest.raises(ConfigurationError, match=(
            r"RECSDK_VISITOR_COOKIE is 'sid' but recsdk's \[api\] visitor_cookie is "
            r"'recsdk_visitor'")):
        build(closing, copy_db("a.db"), RECSDK_VISITOR_COOKIE="sid")
    ext, app = build(closing, copy_db("b.db"), settings={"api": {"visitor_cookie": "sid"}},
                     RECSDK_VISITOR_COOKIE="sid")

    @app.get("/who")
    def who() -> str:
        return ext.identity().session_id or ""

    assert app.test_client().get("/who").headers["Set-Cookie"].startswith("sid=")
    build(closing, copy_db("c.db"), RECSDK_VISITOR_COOKIE="sid", RECSDK_MOUNT_API=False)


def test_an_identity_callback_replaces_the_default(trained) -> None:
    ext, app = trained
    ext.identity_loader(lambda: ("u5", "tab-7"))

    @app.get("/rec")
    def rec() -> str:
        return ",".join(ext.recommend("default", k=2).item_ids)

    assert len(app.test_client().get("/rec").text.split(",")) == 2
    with app.test_request_context("/"):
        assert ext.identity() == Identity("u5", "tab-7")
        assert current_extension() is ext


def test_recommend_never_raises_into_the_page(trained, monkeypatch, caplog) -> None:
    ext, app = trained
    sdk = ext.sdk(app)

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the database fell over")

    monkeypatch.setattr(sdk, "recommend", broken)
    monkeypatch.setattr(sdk, "similar_items", broken)
    with app.test_request_context("/"), caplog.at_level(logging.WARNING, "recsdk.flask_ext"):
        result = ext.recommend("home", k=3)
        similar = ext.similar_items("i1", 3)
    for answer in (result, similar):
        assert answer.items == [] and answer.degraded and answer.request_id == ""
        assert "RuntimeError: the database fell over" in answer.failures[0]
    assert "the database fell over" in caplog.text
    assert sdk.telemetry.recommendations.labels(
        placement="home", variant="default", outcome="error")._value.get() == 1


def test_a_slow_answer_is_abandoned_at_the_page_budget(copy_db, closing, monkeypatch) -> None:
    ext, app = build(closing, copy_db(), settings={"plugins": {"popularity": {}}},
                     RECSDK_RECOMMEND_TIMEOUT_MS=100)
    sdk = ext.sdk(app)
    fill(sdk)
    sdk.fit()
    with app.test_request_context("/"):
        assert len(ext.recommend("default", k=2).items) == 2  # in budget: served
        release = threading.Event()
        monkeypatch.setattr(sdk, "recommend", lambda *a, **k: release.wait(5))
        started = time.perf_counter()
        late = ext.recommend("default", k=2)
        assert time.perf_counter() - started < 2
        release.set()
    assert late.items == [] and late.degraded
    assert "RECSDK_RECOMMEND_TIMEOUT_MS=100" in late.failures[0]


def test_bad_requests_and_an_untrained_sdk_give_empty_lists(copy_db, closing) -> None:
    ext, app = build(closing, copy_db())
    with app.test_request_context("/"):
        assert ext.similar_items("i1").items == []  # no model yet: quietly empty
        unknown = ext.recommend("checkout")
        assert unknown.items == [] and "Unknown placement 'checkout'" in unknown.failures[0]
        assert ext.recommend("default", k=0).failures[0].startswith("recommend: Validation")


def test_track_stores_events_for_the_visitor_and_never_raises(trained, caplog) -> None:
    ext, app = trained
    sdk = ext.sdk(app)
    with app.test_request_context("/"):
        session["user_id"] = "u7"
        report = ext.track("purchase", "i3", value=19.5, event_id="order-1-i3")
        visitor = ext.identity().session_id
        assert report is not None and report.stored == 1
        with caplog.at_level(logging.WARNING, "recsdk.flask_ext"):
            assert ext.track("teleport!", "i3") is None
        assert "could not store a 'teleport!' event" in caplog.text
    history = sdk.history("u7")
    assert (history.item_ids[-1], history.types[-1], history.values[-1],
            history.session_ids[-1]) == ("i3", "purchase", 19.5, visitor)
    with app.test_request_context("/"):
        anonymous = ext.identity()
        assert ext.track("view", "i2").stored == 1
    assert sdk.history(None, anonymous.session_id).item_ids == ["i2"]
    assert sdk.history(anonymous.session_id).item_ids == ["i2"]
