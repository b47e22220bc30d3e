"""GET /api/v1/r: a recommended item's link that logs the click without JavaScript.

A valid click is stored, then the browser goes on; an invalid one is counted and the
browser still goes on; a target off this site (and off api.redirect_hosts) is refused
whatever the click: no open redirect.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from recsdk import RecSDK
from recsdk.api.capture import click_url
from recsdk.capture.redirects import UnsafeTarget, safe_target
from tests.api.capture_helpers import Shop, open_shop

ALLOWED = ("cdn.shop.example", "shop.example:8443")


@pytest.fixture
def shop(make_sdk: Callable[..., RecSDK]) -> Shop:
    return open_shop(make_sdk, api={"redirect_hosts": list(ALLOWED)})


def click(shop: Shop, served: dict[str, Any], index: int = 0, to: str = "/p/1",
          **change: Any) -> Any:
    item = served["items"][index]
    query = {"token": served["token"], "item": item["item_id"], "pos": item["position"],
             "to": to, **change}
    return shop.client.get("/api/v1/r", query_string=query)


def test_a_valid_click_is_stored_then_redirected(shop: Shop) -> None:
    served = shop.serve(user_id="u1")
    shop.prove(user_id="u1")
    answer = click(shop, served, 1, to="/p/sku?ref=home#reviews")
    assert answer.status_code == 302
    assert answer.headers["Location"] == "/p/sku?ref=home#reviews"
    assert answer.headers["Cache-Control"] == "no-store"
    assert answer.headers["Referrer-Policy"] == "no-referrer"
    (row,) = shop.feedback()
    assert (row.request_id, row.item_id, row.type, row.position, row.user_id) == (
        served["request_id"], served["items"][1]["item_id"], "click", 2, "u1")
    assert click(shop, served, 1).status_code == 302  # a second visit of the link
    assert len(shop.feedback()) == 1 and shop.refused("replay") == 1


@pytest.mark.parametrize(("change", "reason"), [
    ({"token": "forged.token"}, "bad_token"),
    ({"token": None}, "bad_event"),
    ({"pos": "7"}, "not_in_list"),
    ({"pos": "x"}, "bad_event"),
    ({"pos": "\u00b2"}, "bad_event"),  # a digit to str.isdigit, not to int()
    ({"item": "sku-none"}, "not_in_list"),
])
def test_an_invalid_click_is_counted_and_the_visitor_still_goes_on(
        shop: Shop, change: dict[str, Any], reason: str) -> None:
    served = shop.serve(user_id="u1")
    shop.prove(user_id="u1")
    answer = click(shop, served, **change)
    assert (answer.status_code, answer.headers["Location"]) == (302, "/p/1")
    assert shop.refused(reason) == 1
    assert shop.feedback() == []


def test_a_copied_link_clicked_by_someone_else_is_not_credited(shop: Shop) -> None:
    served = shop.serve(user_id="u1")
    assert click(shop, served).status_code == 302  # no visitor cookie at all
    shop.prove(user_id="u2")
    assert click(shop, served).status_code == 302
    assert shop.refused("wrong_visitor") == 2 and shop.feedback() == []


def test_a_rate_limited_click_still_redirects(make_sdk: Callable[..., RecSDK]) -> None:
    shop = open_shop(make_sdk, api={"beacon_burst": 1, "beacon_rate_per_s": 0.01})
    served = shop.serve(user_id="u1")
    shop.prove(user_id="u1")
    assert [click(shop, served, n).status_code for n in range(3)] == [302, 302, 302]
    assert len(shop.feedback()) == 1 and shop.refused("rate_limited") == 2


OPEN_REDIRECTS = [
    "//evil.example/p",
    "///evil.example",
    "/\\evil.example",
    "\\\\evil.example",
    "/\t/evil.example",
    "/\n/evil.example",
    " /p/1",
    "https://evil.example/p",
    "http://evil.example",
    "https://cdn.shop.example@evil.example/",
    "https://user:pw@cdn.shop.example/",
    "https://cdn.shop.example.evil.example/",
    "https://shop.example/p",  # only its port 8443 is allowed
    "https://shop.example:9999/p",
    "https://shop.example:99999/p",
    "javascript:alert(1)",
    "JAVASCRIPT:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "ftp://cdn.shop.example/f",
    "evil.example",
    "p/1",
    "https:evil.example",
    "https:///evil.example",
    "",
    "/" + "a" * 2048,
]


@pytest.mark.parametrize("target", OPEN_REDIRECTS)
def test_no_open_redirect(shop: Shop, target: str) -> None:
    served = shop.serve(user_id="u1")
    shop.prove(user_id="u1")
    answer = click(shop, served, to=target)
    assert answer.status_code == 400
    assert "Location" not in answer.headers
    assert "'to'" in answer.get_json()["message"]
    assert shop.feedback() == []


def test_a_missing_target_is_a_clear_error(shop: Shop) -> None:
    answer = shop.client.get("/api/v1/r?token=x&item=a&pos=1")
    assert answer.status_code == 422
    assert "to" in answer.get_json()["errors"]["query"]


@pytest.mark.parametrize("target", ["/p/1", "/", "/p/%2F%2Fevil", "/p?next=//evil",
                                    "https://cdn.shop.example/p/1?x=1",
                                    "HTTPS://CDN.Shop.Example/p", "https://shop.example:8443/"])
def test_paths_and_listed_hosts_are_allowed(target: str) -> None:
    assert safe_target(target, ALLOWED) == target


def test_nothing_but_paths_without_listed_hosts() -> None:
    with pytest.raises(UnsafeTarget, match=r"not in api\.redirect_hosts"):
        safe_target("https://cdn.shop.example/p", ())


def test_click_url_builds_the_redirect_for_templates(shop: Shop) -> None:
    served = shop.serve(user_id="u1")
    shop.prove(user_id="u1")
    item = served["items"][0]
    with shop.app.test_request_context():
        url = click_url(served["token"], item["item_id"], item["position"], "/p/x?a=1&b=2")
    assert url.startswith("/api/v1/r?")
    answer = shop.client.get(url)
    assert (answer.status_code, answer.headers["Location"]) == (302, "/p/x?a=1&b=2")
    assert len(shop.feedback()) == 1
