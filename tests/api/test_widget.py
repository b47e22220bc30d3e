"""GET /api/v1/widget/recommendations: a list for the page's own visitor, never another's.

The visitor is the one a visitor token or the visitor cookie proves, or a new anonymous
one (given the cookie); no parameter names a user. The answer carries what the widget
shows (as data) and a list token that the beacon credits.
"""

from __future__ import annotations

from collections.abc import Callable
from http.cookies import SimpleCookie
from typing import Any

import pytest
from sqlalchemy import select

from recsdk import RecSDK
from recsdk.capture.tokens import Visitor
from recsdk.storage import models
from tests.api.capture_helpers import COOKIE, HOSTILE_TITLE, Shop, event, open_shop
from tests.api.conftest import API_KEY

WIDGET = "/api/v1/widget/recommendations"


@pytest.fixture
def shop(make_sdk: Callable[..., RecSDK]) -> Shop:
    return open_shop(make_sdk)


def served_to(shop: Shop, request_id: str) -> tuple[str | None, str | None]:
    """(user_id, session_id) the served-list log holds for a list."""
    shop.sdk.request_log.flush()
    req = models.RecommendationRequest.__table__
    with shop.sdk.store.engine.connect() as conn:
        row = conn.execute(select(req.c.user_id, req.c.session_id)
                           .where(req.c.id == request_id)).one()
    return row.user_id, row.session_id


def set_cookie(answer: Any) -> Any:
    cookie = SimpleCookie()
    cookie.load(answer.headers["Set-Cookie"])
    return cookie[COOKIE]


def test_a_new_visitor_gets_a_list_a_cookie_and_a_visitor_token(shop: Shop) -> None:
    answer = shop.client.get(WIDGET, query_string={"placement": "home", "k": 4})
    assert answer.status_code == 200
    body = answer.get_json()
    assert [i["position"] for i in body["items"]] == [1, 2, 3, 4]
    first = body["items"][0]
    n = first["item_id"].removeprefix("sku-")
    assert first == {"item_id": f"sku-{n}", "position": 1, "title": f"Item {n}",
                     "price": 10.0 + int(n), "original_price": 20.0 + int(n),
                     "image_url": f"/img/sku-{n}.png", "url": f"/p/sku-{n}"}
    assert answer.headers["Cache-Control"] == "no-store"
    assert answer.headers["Access-Control-Allow-Origin"] == "*"
    cookie = set_cookie(answer)
    assert cookie["httponly"] and cookie["samesite"] == "Lax" and cookie["path"] == "/"
    visitor = shop.capture.tokens.read_visitor(cookie.value)
    assert body["visitor"] == cookie.value
    assert visitor.session_id and len(visitor.session_id) == 32
    assert served_to(shop, body["request_id"]) == (None, visitor.session_id)
    claims = shop.capture.tokens.read_list(body["token"])
    assert (claims.request_id, claims.visitor) == (body["request_id"], visitor)


def test_the_cookie_keeps_the_visitor_across_pages(shop: Shop) -> None:
    first = shop.client.get(WIDGET).get_json()
    again = shop.client.get(WIDGET)  # the test client sends the cookie back
    assert "visitor" not in again.get_json()  # the cookie proves it: not handed to JS
    assert "Set-Cookie" not in again.headers
    assert served_to(shop, again.get_json()["request_id"]) == served_to(
        shop, first["request_id"])


def test_a_page_cannot_ask_for_another_users_list(shop: Shop) -> None:
    """user_id is no parameter: the list is the caller's own, whatever the query says."""
    answer = shop.client.get(WIDGET, query_string={"user_id": "u1", "session_id": "s-u1"})
    assert answer.status_code == 200
    user, session = served_to(shop, answer.get_json()["request_id"])
    assert user is None and session not in (None, "s-u1")


def test_a_signed_visitor_token_from_the_host_page_serves_that_user(shop: Shop) -> None:
    token = shop.client.post("/api/v1/visitor-token", json={"user_id": "u1"}).get_json()
    answer = shop.client.get(WIDGET, query_string={"visitor": token["token"]})
    assert answer.status_code == 200
    assert served_to(shop, answer.get_json()["request_id"]) == ("u1", None)
    assert shop.capture.tokens.read_visitor(set_cookie(answer).value) == Visitor(user_id="u1")


@pytest.mark.parametrize("visitor", ["forged", "x" * 3000])
def test_a_bad_visitor_token_is_refused(shop: Shop, visitor: str) -> None:
    answer = shop.client.get(WIDGET, query_string={"visitor": visitor})
    assert answer.status_code in (403, 422)
    assert answer.get_json()["message"]


def test_an_expired_visitor_token_is_refused(shop: Shop) -> None:
    old = shop.capture.tokens.visitor_token(Visitor(user_id="u1"), now=0)
    answer = shop.client.get(WIDGET, query_string={"visitor": old})
    assert answer.status_code == 403
    assert "expired" in answer.get_json()["message"]


def test_the_widget_list_is_credited_through_the_beacon(shop: Shop) -> None:
    body = shop.client.get(WIDGET, query_string={"k": 3}).get_json()
    answer = shop.beacon([event(body, 0, "impression"), event(body, 0)]).get_json()
    assert answer["accepted"] == 2
    assert {r.request_id for r in shop.feedback()} == {body["request_id"]}
    other = shop.app.test_client()  # another browser: no cookie, no token
    assert shop.beacon([event(body, 1)], client=other).get_json()["reasons"] == {
        "wrong_visitor": 1}
    cross_site = {"visitor": body["visitor"], "events": [event(body, 1)]}
    assert shop.beacon(cross_site, client=other).get_json()["accepted"] == 1


def test_similar_items_for_a_product_page(shop: Shop) -> None:
    answer = shop.client.get(WIDGET, query_string={"item_id": "sku-1", "k": 3})
    assert answer.status_code == 200
    body = answer.get_json()
    assert body["placement"] == "similar"
    assert "sku-1" not in [i["item_id"] for i in body["items"]]


@pytest.mark.parametrize(("query", "status", "field"), [
    ({"placement": "checkout"}, 422, "placement"),
    ({"k": 51}, 422, "k"),
    ({"k": 0}, 422, "k"),
    ({"k": "many"}, 422, "k"),
    ({"item_id": "a\x00"}, 422, "item_id"),
])
def test_bad_queries_are_named(shop: Shop, query: dict[str, Any], status: int,
                               field: str) -> None:
    answer = shop.client.get(WIDGET, query_string=query)
    assert answer.status_code == status
    assert field in answer.get_json()["errors"]["query"]


def test_titles_are_data_whatever_they_hold(shop: Shop) -> None:
    shop.sdk.upsert_items([{"id": f"sku-{n}", "title": HOSTILE_TITLE,
                            "image_url": "javascript:alert(1)"} for n in range(12)])
    shop.sdk.refresh_catalog()
    body = shop.client.get(WIDGET, query_string={"k": 2}).get_json()
    assert {i["title"] for i in body["items"]} == {HOSTILE_TITLE}
    assert "<img" in shop.client.get(WIDGET).get_data(as_text=True)  # JSON, not HTML
    # rendering is the script's job: tests/api/test_capture_script.py


def test_a_burst_of_widget_calls_is_rate_limited(make_sdk: Callable[..., RecSDK]) -> None:
    shop = open_shop(make_sdk, api={"widget_burst": 2, "widget_rate_per_s": 0.01})
    codes = [shop.app.test_client().get(WIDGET).status_code for _ in range(4)]
    assert codes == [200, 200, 429, 429]  # new visitors from one address share a bucket
    assert shop.refused("rate_limited") == 2


def test_visitor_tokens_need_the_api_key(make_sdk: Callable[..., RecSDK]) -> None:
    shop = open_shop(make_sdk, api={"api_key": API_KEY})
    assert shop.client.post("/api/v1/visitor-token",
                            json={"user_id": "u1"}).status_code == 401
    answer = shop.client.post("/api/v1/visitor-token", json={"session_id": "s1"},
                              headers={"X-API-Key": API_KEY})
    assert answer.status_code == 200
    body = answer.get_json()
    assert shop.capture.tokens.read_visitor(body["token"]) == Visitor(session_id="s1")
    assert body["cookie"] == COOKIE and body["expires_at"] > 0
    for bad in ({}, {"user_id": "u", "session_id": "s"}, {"user_id": ""}, {"x": 1}):
        refused = shop.client.post("/api/v1/visitor-token", json=bad,
                                   headers={"X-API-Key": API_KEY})
        assert refused.status_code == 422, bad


def test_list_token_in_a_shop_view_gives_the_visitor_cookie(shop: Shop) -> None:
    """A shop's own view renders a list: list_token() has its response set the cookie,
    so the page's beacons are credited."""
    from flask import jsonify

    from recsdk.api.capture import list_token

    @shop.app.route("/shop/home")
    def home() -> Any:
        result = shop.sdk.recommend("u7", k=3)
        return jsonify({**result.to_dict(), "token": list_token(result, user_id="u7")})

    page = shop.client.get("/shop/home")
    assert shop.capture.tokens.read_visitor(set_cookie(page).value) == Visitor(user_id="u7")
    assert "Set-Cookie" not in shop.client.get("/shop/home").headers  # proven already
    shop.sdk.request_log.flush()
    assert shop.beacon([event(page.get_json())]).get_json()["accepted"] == 1


def test_before_any_training_the_widget_gets_an_empty_list(make_sdk: Callable[..., RecSDK]
                                                          ) -> None:
    from recsdk.api import create_app

    client = create_app(make_sdk(pipeline={"timeout_ms": 10_000})).test_client()
    answer = client.get(WIDGET)
    assert answer.status_code == 200
    body = answer.get_json()
    assert (body["items"], body["degraded"]) == ([], True)  # the script hides the widget
    assert client.get(WIDGET, query_string={"item_id": "sku-1"}).status_code == 409
