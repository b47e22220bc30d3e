"""Widgets degrade without breaking a page, the home page's A/B experiment keeps each
visitor in one variant, and what visitors do reaches recsdk's tables."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from demo_shop.extensions import recsdk_ext
from recsdk.types import RecommendationResult
from tests.demo_shop.conftest import add_to_cart, login, visitor_cookie, visitor_of, widget

PAGES = ("/", "/c/electronics", "/cart", "/search?q=a")


def all_pages(client: FlaskClient, item: str) -> dict[str, Any]:
    add_to_cart(client, item)
    return {path: client.get(path) for path in (*PAGES, f"/p/{item}")}


@pytest.mark.parametrize("failure", ["raises", "empty"])
def test_a_failing_or_empty_recsdk_never_breaks_a_page(app: Flask, client: FlaskClient,
                                                       stocked: list[str],
                                                       monkeypatch, failure: str) -> None:
    sdk = recsdk_ext.sdk(app)
    if failure == "raises":
        def answer(*args: Any, **kwargs: Any) -> Any:
            raise ConnectionError("redis and the database are both down")
    else:
        def answer(*args: Any, **kwargs: Any) -> Any:
            return RecommendationResult("0" * 32, [], kwargs.get("placement", "similar"),
                                        "default", [], sdk.config_hash)
    monkeypatch.setattr(sdk, "recommend", answer)
    monkeypatch.setattr(sdk, "similar_items", answer)
    pages = all_pages(client, stocked[0])
    for path, page in pages.items():
        assert page.status_code == 200, path
        assert "data-recsdk-request-id" not in page.text, path
    home = widget(pages["/"].text, "recommended")
    assert home["attrs"] == {"data-shop-fallback": "true"} and len(home["cards"]) == 8
    assert "Deals of the day" in pages["/"].text
    assert widget(pages["/"].text, "trending") is None
    product = pages[f"/p/{stocked[0]}"].text
    assert widget(product, "similar") is None and widget(product, "bought-together") is None


def test_a_slow_recsdk_is_abandoned_at_the_page_budget(make_app, stocked: list[str],
                                                      monkeypatch) -> None:
    app = make_app(RECSDK_RECOMMEND_TIMEOUT_MS=200)
    sdk = recsdk_ext.sdk(app)
    release = threading.Event()
    monkeypatch.setattr(sdk, "recommend", lambda *a, **k: release.wait(10))
    client = app.test_client()
    try:
        started = time.perf_counter()
        page = client.get("/")
        elapsed = time.perf_counter() - started
    finally:
        release.set()
    assert page.status_code == 200 and elapsed < 3  # two widgets, 0.2 s budget each
    assert widget(page.text, "recommended")["attrs"] == {"data-shop-fallback": "true"}


def visitor_client(app: Flask, visitor: str) -> FlaskClient:
    client = app.test_client()
    client.set_cookie("recsdk_visitor", visitor_cookie(app, visitor))
    return client


def home_variant(client: FlaskClient) -> tuple[str, str]:
    found = widget(client.get("/").text, "recommended")
    return found["attrs"]["data-recsdk-variant"], found["attrs"]["data-recsdk-request-id"]


def test_the_home_experiment_assigns_visitors_and_keeps_them(app: Flask,
                                                             stocked: list[str]) -> None:
    variants: dict[str, str] = {}
    requests: dict[str, str] = {}
    for n in range(12):
        visitor = f"test-visitor-{n:05d}"
        client = visitor_client(app, visitor)
        seen = set()
        for path in ("/", f"/p/{stocked[n]}", "/c/electronics", "/"):
            page = client.get(path)
            assert page.status_code == 200
            if path == "/":
                variant, request_id = home_variant(client)
                seen.add(variant)
                requests[request_id] = variant
        assert len(seen) == 1, (visitor, seen)  # across pages
        variants[visitor] = seen.pop()
        # a later visit: a new browser session, the same long-lived cookie
        assert home_variant(visitor_client(app, visitor))[0] == variants[visitor]
    assert set(variants.values()) == {"blend", "popular"}

    sdk = recsdk_ext.sdk(app)
    sdk.request_log.flush()
    served = sdk.store.request_info(list(requests))
    for request_id, variant in requests.items():
        assert served[request_id]["variant"] == variant
        if variant == "popular":  # popularity alone serves that arm
            assert served[request_id]["plugins"] == ["popularity"]
    for visitor, variant in variants.items():
        expected = sdk.experiments.assign("home", user_id=None, session_id=visitor,
                                          now=datetime.now(UTC), is_returning=False)
        assert expected.variant == variant and expected.experiment == "home_ranking"


def test_a_customer_keeps_the_variant_across_browsers(app: Flask) -> None:
    seen = set()
    for _ in range(2):
        client = app.test_client()
        login(client, "u09")
        seen.add(home_variant(client)[0])
    assert len(seen) == 1


def test_views_and_cart_changes_land_in_recsdk(app: Flask, client: FlaskClient,
                                               stocked: list[str]) -> None:
    first, second = stocked[:2]
    client.get(f"/p/{first}")
    visitor = visitor_of(app, client)
    add_to_cart(client, first)
    login(client, "u11")
    client.get(f"/p/{second}")
    frame = recsdk_ext.sdk(app).store.events_frame()
    mine = frame[frame["session_id"] == visitor]
    assert list(zip(mine["user_id"], mine["item_id"], mine["type"], strict=True)) == [
        (visitor, first, "view"), (visitor, first, "add_to_cart"),
        ("u11", second, "view")]
