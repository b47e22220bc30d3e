"""The shop's pages wired to recsdk's feedback capture: list tokens on every widget, one
visitor identity for pages and beacons, item links through the logging redirect, and
add-to-cart and purchases credited server side to the list that led to them."""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import create_engine, inspect, select, text

from demo_shop import db
from demo_shop.extensions import current_shop, recsdk_ext
from recsdk.api.capture import current_capture
from recsdk.experiments.report import experiment_report
from recsdk.storage import models
from tests.demo_shop.conftest import add_to_cart, csrf, login, target, visitor_of, widget


def feedback(app: Flask, **where: Any) -> list[Any]:
    fb = models.Feedback.__table__
    query = select(fb).order_by(fb.c.id)
    for column, value in where.items():
        query = query.where(fb.c[column] == value)
    with recsdk_ext.sdk(app).store.engine.connect() as conn:
        return list(conn.execute(query).all())


def beacon(client: FlaskClient, events: list[dict[str, Any]]) -> dict[str, Any]:
    answer = client.post("/api/v1/beacon", data=json.dumps(events),
                         content_type="text/plain;charset=UTF-8")
    assert answer.status_code == 200, answer.text
    return answer.json


def home_list(client: FlaskClient) -> dict[str, Any]:
    found = widget(client.get("/").text, "recommended")
    assert found is not None and found["attrs"].get("data-recsdk-token"), found
    return found


def price_of(app: Flask, item_id: str) -> float:
    with app.app_context():
        product = current_shop().catalogue.product(item_id)
    assert product is not None
    return product.price


def test_every_served_widget_carries_its_token_and_logging_links(
        app: Flask, client: FlaskClient) -> None:
    page = client.get("/")
    assert '<script src="/api/v1/static/recsdk.js" defer></script>' in page.text
    visitor = visitor_of(app, client)
    for key in ("recommended", "trending"):
        found = widget(page.text, key)
        attrs = found["attrs"]
        with app.app_context():
            claims = current_capture().tokens.read_list(attrs["data-recsdk-token"])
        assert claims.request_id == attrs["data-recsdk-request-id"]
        assert claims.visitor.session_id == visitor  # the visitor the cookie proves
        assert len(found["links"]) == len(found["items"]) >= 4
        for (item, position), link in zip(found["items"], found["links"], strict=True):
            parts = urlsplit(link)
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            assert parts.path == "/api/v1/r"
            assert (query["token"], query["item"], query["pos"]) == (
                attrs["data-recsdk-token"], item, str(position))
            assert query["to"] == (f"/p/{item}?rid={attrs['data-recsdk-request-id']}"
                                   f"&pos={position}")
        section = page.text.split(f'id="widget-{key}"', 1)[1].split("</section>", 1)[0]
        assert section.count('data-recsdk-action="not_interested"') == len(found["items"])


def test_the_shops_own_fallback_has_no_token_and_plain_links(
        app: Flask, client: FlaskClient, monkeypatch) -> None:
    def fails(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("down")

    monkeypatch.setattr(recsdk_ext.sdk(app), "recommend", fails)
    found = widget(client.get("/").text, "recommended")
    assert found["attrs"] == {"data-shop-fallback": "true"}
    assert all(link.startswith("/p/") and "rid=" not in link for link in found["links"])


@pytest.mark.parametrize("logged_in", [False, True])
def test_a_beacon_from_the_shops_page_is_stored(app: Flask, client: FlaskClient,
                                                logged_in: bool) -> None:
    """The page's list token and the visitor cookie name one visitor, anonymous or
    logged in (the token is bound to the browser; the row gets the list's user)."""
    if logged_in:
        login(client, "u07")
    found = home_list(client)
    token = found["attrs"]["data-recsdk-token"]
    (item, position), (other, other_position) = found["items"][:2]
    report = beacon(client, [
        {"token": token, "type": "impression", "item_id": item, "position": position},
        {"token": token, "type": "click", "item_id": item, "position": position},
        {"token": token, "type": "not_interested", "item_id": other,
         "position": other_position}])
    assert report["accepted"] == 3, report
    rows = feedback(app, request_id=found["attrs"]["data-recsdk-request-id"])
    assert [(r.type, r.item_id, r.position) for r in rows] == [
        ("impression", item, position), ("click", item, position),
        ("not_interested", other, other_position)]
    assert {r.user_id for r in rows} == {"u07" if logged_in else None}
    assert {r.variant for r in rows} == {found["attrs"]["data-recsdk-variant"]}


def test_another_browsers_beacon_for_the_list_is_refused(app: Flask,
                                                          client: FlaskClient) -> None:
    found = home_list(client)
    item, position = found["items"][0]
    thief = app.test_client()
    thief.get("/")  # a visitor cookie of its own
    report = beacon(thief, [{"token": found["attrs"]["data-recsdk-token"], "type": "click",
                             "item_id": item, "position": position}])
    assert report["accepted"] == 0 and report["reasons"] == {"wrong_visitor": 1}
    assert feedback(app) == []


def test_a_click_without_javascript_is_logged_once_and_lands_on_the_product(
        app: Flask, client: FlaskClient) -> None:
    found = home_list(client)
    (item, position), link = found["items"][2], found["links"][2]
    answer = client.get(link)
    assert answer.status_code == 302 and answer.headers["Location"] == target(link)
    assert client.get(answer.headers["Location"]).status_code == 200
    assert client.get(link).status_code == 302  # back, and the same link again
    rows = feedback(app, type="click")
    assert [(r.request_id, r.item_id, r.position) for r in rows] == [
        (found["attrs"]["data-recsdk-request-id"], item, position)]


def follow(client: FlaskClient, found: dict[str, Any], index: int) -> str:
    """Click a recommended item without JavaScript; its product page's path."""
    landed = client.get(found["links"][index]).headers["Location"]
    assert client.get(landed).status_code == 200
    return landed


def test_add_to_cart_and_purchase_are_credited_to_the_list_that_led_there(
        app: Flask, client: FlaskClient) -> None:
    found = home_list(client)
    request_id = found["attrs"]["data-recsdk-request-id"]
    variant = found["attrs"]["data-recsdk-variant"]
    item, position = found["items"][1]
    follow(client, found, 1)
    assert add_to_cart(client, item, 2).status_code == 302
    price = price_of(app, item)
    (cart,) = feedback(app, type="add_to_cart")
    assert (cart.request_id, cart.item_id, cart.position, cart.user_id) == (
        request_id, item, position, None)
    assert cart.value == pytest.approx(round(2 * price, 2))  # the shop's price

    login(client, "u12")  # the anonymous cart, and its line's list, move to the account
    placed = client.post("/checkout", data={"csrf_token": csrf(client, "/checkout")})
    assert placed.status_code == 302
    (bought,) = feedback(app, type="purchase")
    assert (bought.request_id, bought.item_id, bought.position, bought.user_id) == (
        request_id, item, position, "u12")
    assert bought.value == pytest.approx(round(2 * price, 2))
    with app.app_context(), current_shop().engine.connect() as conn:
        line = conn.execute(select(db.order_lines).where(
            db.order_lines.c.item_id == item)).one()
    assert (line.request_id, line.position) == (request_id, position)
    events = recsdk_ext.sdk(app).store.events_frame()
    assert len(events[(events["type"] == "purchase") & (events["user_id"] == "u12")]) == 1

    sdk = recsdk_ext.sdk(app)
    (experiment,) = sdk.settings.experiments
    report = experiment_report(sdk.store, experiment)
    arm = {a.name: a for a in report.arms}[variant]
    assert (arm.add_to_carts, arm.purchases, arm.feedback_purchases,
            arm.attributed_purchases) == (1, 1, 1, 0)  # the event and the row: once
    assert arm.revenue == pytest.approx(round(2 * price, 2))


def test_more_units_from_the_cart_keep_the_lines_list(app: Flask,
                                                      client: FlaskClient) -> None:
    found = home_list(client)
    item, _ = found["items"][0]
    follow(client, found, 0)
    add_to_cart(client, item)
    client.get(f"/p/{item}")  # later, straight to the product: no new list
    add_to_cart(client, item)
    rows = feedback(app, type="add_to_cart")
    assert len(rows) == 2 and {r.request_id for r in rows} == {
        found["attrs"]["data-recsdk-request-id"]}


@pytest.mark.parametrize("forge", ["malformed", "unknown", "foreign", "position"])
def test_a_forged_rid_in_a_product_url_credits_no_list(app: Flask, client: FlaskClient,
                                                       forge: str, caplog) -> None:
    other = app.test_client()
    theirs = home_list(other)  # another visitor's list
    item, position = theirs["items"][0]
    rid = theirs["attrs"]["data-recsdk-request-id"]
    if forge == "malformed":
        query, reason = f"rid=not-a-request&pos={position}", "rid must be a served list's"
    elif forge == "unknown":
        query, reason = f"rid={'0' * 32}&pos={position}", "was never served"
    elif forge == "foreign":
        query, reason = f"rid={rid}&pos={position}", "was served to another visitor"
    else:
        mine = home_list(client)
        item, position = mine["items"][0]
        rid = mine["attrs"]["data-recsdk-request-id"]
        query, reason = f"rid={rid}&pos={position + 1}", f"is at position {position}"
    with caplog.at_level(logging.INFO, logger="demo_shop.views"):
        assert client.get(f"/p/{item}?{query}").status_code == 200
    assert reason in caplog.text
    add_to_cart(client, item)
    assert feedback(app, type="add_to_cart") == []
    login(client, "u13")
    client.post("/checkout", data={"csrf_token": csrf(client, "/checkout")})
    assert feedback(app) == []


def test_ratings_and_reviews_are_captured(app: Flask, client: FlaskClient,
                                          caplog) -> None:
    found = home_list(client)
    item, position = found["items"][0]
    follow(client, found, 0)
    form = {"csrf_token": csrf(client, f"/p/{item}"), "rating": "4",
            "review": "  Sturdy, and it came on time.  "}
    answer = client.post(f"/p/{item}/review", data=form)
    assert answer.status_code == 302 and answer.headers["Location"] == f"/p/{item}#review"
    assert "Thank you for rating" in client.get(f"/p/{item}").text
    visitor = visitor_of(app, client)
    events = recsdk_ext.sdk(app).store.events_frame()
    mine = events[(events["session_id"] == visitor) & events["type"].isin(
        ["rating", "review"])]
    assert sorted(zip(mine["type"], mine["value"], strict=True)) == [("rating", 4.0),
                                                                     ("review", 4.0)]
    ev = models.Event.__table__
    with recsdk_ext.sdk(app).store.engine.connect() as conn:
        context = conn.execute(select(ev.c.context).where(
            ev.c.session_id == visitor, ev.c.type == "review")).scalar_one()
    assert context == {"text": "Sturdy, and it came on time."}
    (rated,) = feedback(app, type="rating")
    assert (rated.request_id, rated.item_id, rated.position, rated.value) == (
        found["attrs"]["data-recsdk-request-id"], item, position, 4.0)

    client.post(f"/p/{item}/review", data={**form, "review": ""})  # a rating alone
    events = recsdk_ext.sdk(app).store.events_frame()
    assert len(events[(events["session_id"] == visitor) & (events["type"] == "review")]) == 1


@pytest.mark.parametrize(("form", "message"), [
    ({"rating": "0"}, "The rating must be a whole number of stars from 1 to 5; got &#39;0&#39;"),
    ({"rating": "five"}, "from 1 to 5; got &#39;five&#39;"),
    ({}, "from 1 to 5; got &#39;&#39;"),
    ({"rating": "3", "review": "x" * 2001}, "The review is 2,001 characters long"),
    ({"rating": "3", "review": "a\x00b"}, "a character that is not text"),
])
def test_a_bad_rating_or_review_is_refused_naming_why(app: Flask, client: FlaskClient,
                                                      form: dict[str, str],
                                                      message: str) -> None:
    token = csrf(client, "/p/i010")
    answer = client.post("/p/i010/review", data={"csrf_token": token, **form})
    assert answer.status_code == 302
    assert message in client.get("/p/i010").text
    events = recsdk_ext.sdk(app).store.events_frame()
    assert not events[events["session_id"] == visitor_of(app, client)]["type"].isin(
        ["rating", "review"]).any()
    assert client.post("/p/nope/review", data={"csrf_token": token,
                                                 "rating": "3"}).status_code == 404


def test_the_tokens_key_follows_the_shops_secret_key(make_app) -> None:
    """Without [api] beacon_secret the key is derived from SECRET_KEY: a cookie and a
    page of one process are valid in the next one with the same key."""
    first, second = make_app(), make_app()
    client = first.test_client()
    found = home_list(client)
    cookie = client.get_cookie("recsdk_visitor").value
    with first.app_context():
        key = current_capture().tokens
    with second.app_context():
        again = current_capture().tokens
        assert again.read_visitor(cookie) == key.read_visitor(cookie)
        assert again.read_list(found["attrs"]["data-recsdk-token"]).request_id == found[
            "attrs"]["data-recsdk-request-id"]
    third = make_app(SECRET_KEY="another key")
    with third.app_context():
        assert current_capture().proven_visitor(cookie) is None


def test_an_older_shop_database_gets_the_new_columns(tmp_path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    with engine.begin() as conn:  # the tables as the first release made them
        conn.execute(text("CREATE TABLE shop_cart_lines (account_id VARCHAR(255), "
                          "item_id VARCHAR(255), quantity INTEGER NOT NULL, "
                          "PRIMARY KEY (account_id, item_id))"))
        conn.execute(text("CREATE TABLE shop_order_lines (order_id INTEGER, item_id "
                          "VARCHAR(255), title TEXT, unit_price FLOAT, quantity INTEGER, "
                          "PRIMARY KEY (order_id, item_id))"))
        conn.execute(text("INSERT INTO shop_cart_lines VALUES ('u1', 'i1', 2)"))
    db.create_tables(engine)
    db.create_tables(engine)  # and again: nothing left to add
    for table in ("shop_cart_lines", "shop_order_lines"):
        assert {"request_id", "position"} <= {c["name"] for c in
                                              inspect(engine).get_columns(table)}
    with engine.connect() as conn:
        assert conn.execute(select(db.cart_lines)).one()._mapping == {
            "account_id": "u1", "item_id": "i1", "quantity": 2, "request_id": None,
            "position": None}
    engine.dispose()


def test_the_session_keeps_the_newest_sources_for_a_day(app: Flask) -> None:
    from demo_shop import attribution
    from demo_shop.attribution import MAX_REMEMBERED, TTL_S, Source

    with app.test_request_context("/"):
        for n in range(MAX_REMEMBERED + 5):
            attribution.remember(f"i{n:03d}", Source("a" * 32, n + 1), now=1_000 + n)
        assert attribution.source_of("i000", now=1_100) is None  # the oldest left
        newest = f"i{MAX_REMEMBERED + 4:03d}"
        assert attribution.source_of(newest, now=1_100) == Source("a" * 32,
                                                                  MAX_REMEMBERED + 5)
        assert attribution.source_of(newest, now=1_034 + TTL_S + 1) is None
        attribution.forget([newest])
        assert attribution.source_of(newest, now=1_100) is None
