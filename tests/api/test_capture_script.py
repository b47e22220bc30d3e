"""recsdk.js: served by the blueprint, shipped in the wheel, and what it does to a page.

Its behaviour is checked in Node (when installed) against a minimal DOM that throws on
innerHTML and friends (tests/api/recsdk_js_harness.js): widget data is rendered as text
with checked URLs, clicks remember their list for a later add-to-cart, impressions
need half the item visible for a second, events leave in batches. Real browsers come
in the storefront's end-to-end tests.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from recsdk import RecSDK
from recsdk.api.capture import SCRIPT
from tests.api.capture_helpers import HOSTILE_TITLE, open_shop

REPO = Path(__file__).resolve().parents[2]
HARNESS = Path(__file__).with_name("recsdk_js_harness.js")
NODE = shutil.which("node")
needs_node = pytest.mark.skipif(NODE is None, reason="node is not installed")


@pytest.fixture(scope="module")
def page() -> dict[str, Any]:
    """The harness's scenarios, run once."""
    if NODE is None:
        pytest.skip("node is not installed")
    english = {**os.environ, "LC_ALL": "en_US.UTF-8", "LANG": "en_US.UTF-8"}  # prices
    done = subprocess.run([NODE, str(HARNESS), str(SCRIPT)], capture_output=True, text=True,
                          timeout=60, check=False, env=english)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def walk(node: dict[str, Any]) -> list[dict[str, Any]]:
    return [node, *(n for child in node["children"] for n in walk(child))]


def test_the_script_is_served_cacheable_as_javascript(make_sdk: Callable[..., RecSDK]
                                                      ) -> None:
    client = open_shop(make_sdk).client
    answer = client.get("/api/v1/static/recsdk.js")
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "text/javascript; charset=utf-8"
    assert answer.headers["Cache-Control"] == "public, max-age=3600"
    assert answer.get_data() == SCRIPT.read_bytes()
    again = client.get("/api/v1/static/recsdk.js",
                       headers={"If-None-Match": answer.headers["ETag"]})
    assert again.status_code == 304


def test_the_wheel_ships_the_script() -> None:
    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg")
    shipped = [p.strip() for p in config["options.package_data"]["recsdk"].split(",")]
    assert "static/recsdk.js" in shipped
    assert (REPO / "recsdk" / "static" / "recsdk.js") == SCRIPT and SCRIPT.is_file()


def test_the_script_never_writes_markup() -> None:
    source = SCRIPT.read_text(encoding="utf-8")
    code = re.sub(r"/\*.*?\*/|//[^\n]*", "", source, flags=re.S)  # comments may say so
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(",
                 "new Function", "setAttribute('on", "import("):
        assert sink not in code, sink


@needs_node
def test_the_script_is_valid_javascript() -> None:
    assert NODE is not None
    done = subprocess.run([NODE, "--check", str(SCRIPT)], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr


def test_widget_data_is_rendered_as_text_with_checked_urls(page: dict[str, Any]) -> None:
    nodes = walk(page["render"])
    assert {n["tag"] for n in nodes} <= {"DIV", "H3", "UL", "LI", "A", "SPAN", "IMG", "S"}
    assert [n["text"] for n in nodes if n["className"] == "recsdk-name"] == [
        HOSTILE_TITLE, "y z", "W"]
    assert nodes[1]["text"] == HOSTILE_TITLE  # the heading (data-title) too
    links = [n.get("href") for n in nodes if n["className"] == "recsdk-link"]
    # javascript: is dropped for the template's link; ids are URL-encoded into it
    assert links == ["https://shop.example/p/%3Cb%3Ex%3C%2Fb%3E",
                     "https://shop.example/p/y%20z", "https://shop.example/p/w"]
    images = [n["src"] for n in nodes if n["tag"] == "IMG"]
    assert images == ["https://shop.example/img/y.png"]  # javascript: and data: dropped
    items = [n["attributes"] for n in nodes if n["tag"] == "LI"]
    assert [a["data-recsdk-position"] for a in items] == ["1", "2", "3"]
    assert page["render"]["attributes"]["data-recsdk-token"] == "T"
    prices = [n["text"] for n in nodes if n["className"].startswith("recsdk-")
              and "price" in n["className"]]
    assert prices == ["€9.50", "€12.00", "€3.00"]


def test_an_empty_or_tokenless_answer_hides_the_widget(page: dict[str, Any]) -> None:
    for tree in page["empty"]:
        assert tree["hidden"] is True and tree["children"] == []


def test_a_click_is_sent_at_once_and_credits_a_later_add_to_cart(page: dict[str, Any]
                                                                  ) -> None:
    flow = page["click_then_track"]
    click = {"token": "T1", "type": "click", "item_id": "b", "position": 2}
    assert flow["afterClick"] == [{"url": "https://shop.example/api/v1/beacon",
                                   "events": [click]}]  # once, and no right-click
    assert flow["attribution"]["b"]["token"] == "T1"
    assert [b["events"] for b in flow["beacons"][1:]] == [
        [{**click, "type": "add_to_cart"}], [{**click, "type": "purchase", "value": 19.5}]]
    assert (flow["tracked"], flow["bought"], flow["stray"], flow["unknown"]) == (
        True, True, False, False)


def test_an_impression_needs_half_the_item_visible_for_a_second(page: dict[str, Any]
                                                                 ) -> None:
    seen = page["impressions"]
    assert seen["observed"] == 3
    assert seen["queuedOnly"] == 0  # batched, not sent one by one
    assert seen["beacons"] == [{"url": "https://shop.example/api/v1/beacon", "events": [
        {"token": "T2", "type": "impression", "item_id": "a", "position": 1}]}]
    assert seen["stillObserved"] == 2  # a logged item is no longer watched
    assert page["timer_flush"] == {"before": 0, "after": 1,
                                   "url": "https://shop.example/api/v1/beacon"}


def test_not_interested_controls_log_that_instead_of_a_click(page: dict[str, Any]) -> None:
    assert [b["events"] for b in page["not_interested"]] == [
        [{"token": "T4", "type": "not_interested", "item_id": "a", "position": 1}]]


def test_a_not_interested_item_is_marked_dismissed(page: dict[str, Any]) -> None:
    assert page["dismissed"] == [True, False]


def test_links_through_the_logging_redirect_go_straight_to_their_target(
        page: dict[str, Any]) -> None:
    """With the script, the redirect is only the href of pages without script: the
    script logs the click itself, so a click is not stored twice."""
    links = page["redirect_links"]["links"]
    redirect = "/api/v1/r?token=T6&item=a&pos=1&to=%2Fp%2Fa%3Frid%3DR%26pos%3D1"
    assert links[0] == {"href": "https://shop.example/p/a?rid=R&pos=1",
                        "redirect": redirect}
    unchanged = [link["href"] for link in links[1:]]
    assert unchanged == [
        "https://shop.example/api/v1/r?token=T6&item=b&pos=2&to=javascript%3Aalert(1)",
        "https://elsewhere.example/api/v1/r?token=T6&item=c&pos=3&to=%2Fp%2Fc", "/p/d",
        "/api/v1/r?token=T6&item=e&pos=5"]
    assert all(link["redirect"] is None for link in links[1:])
    assert page["redirect_links"]["beacons"] == [{
        "url": "https://shop.example/api/v1/beacon",
        "events": [{"token": "T6", "type": "click", "item_id": "a", "position": 1}]}]


def test_a_widget_on_another_site_fetches_with_its_visitor_token(page: dict[str, Any]
                                                                 ) -> None:
    widget = page["widget"]
    assert widget["endpoint"] == "https://recs.example/api/v1"
    assert widget["fetches"] == [{
        "url": "https://recs.example/api/v1/widget/recommendations?placement=home&k=2"
               "&cart=c1&cart=c2&visitor=VISITOR-TOKEN",
        "credentials": "omit"}]  # no third-party cookie: the token proves the visitor
    assert widget["tree"]["attributes"]["data-recsdk-token"] == "WT"
    assert widget["observed"] == 1
    assert widget["beacons"] == [{"url": "https://recs.example/api/v1/beacon", "events": {
        "visitor": "VISITOR-TOKEN",
        "events": [{"token": "WT", "type": "click", "item_id": "a", "position": 1}]}}]


def test_a_failed_widget_call_leaves_nothing_on_the_page(page: dict[str, Any]) -> None:
    failure = page["widget_failure"]
    assert failure["fetches"][0]["credentials"] == "same-origin"
    assert failure["tree"]["hidden"] is True and failure["tree"]["children"] == []
