"""The storefront in a real browser: a visit from the home page to an order, joined in
recsdk's tables and in the home experiment's report; a click without JavaScript; a
failing recsdk; the embeddable widget on a page of another site."""

from __future__ import annotations

import http.client
import re
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

from sqlalchemy import select

from demo_shop.extensions import current_shop, recsdk_ext
from recsdk.experiments.report import experiment_report
from recsdk.storage import models
from tests.browser.conftest import Shop, Tab, wait_until

ACCOUNT, PASSWORD = "u21", "demo"


def feedback(shop: Shop, request_id: str | None = None, kind: str | None = None
             ) -> list[Any]:
    fb = models.Feedback.__table__
    query = select(fb).order_by(fb.c.id)
    if request_id is not None:
        query = query.where(fb.c.request_id == request_id)
    if kind is not None:
        query = query.where(fb.c.type == kind)
    with recsdk_ext.sdk(shop.app).store.engine.connect() as conn:
        return list(conn.execute(query).all())


def home_arm(shop: Shop, variant: str) -> Any:
    """The home experiment's report, its arm ``variant`` (None while it has nothing)."""
    sdk = recsdk_ext.sdk(shop.app)
    (experiment,) = sdk.settings.experiments
    report = experiment_report(sdk.store, experiment)
    return {a.name: a for a in report.arms}.get(variant)


def refused(shop: Shop, reason: str) -> float:
    return recsdk_ext.sdk(shop.app).telemetry.value("recsdk_beacon_refused", reason=reason)


def recommended(tab: Tab) -> dict[str, Any]:
    """The home page's "recommended for you" list, once recsdk.js has taken it over."""
    tab.page.wait_for_function("() => window.recsdk && document.querySelector("
                               "'#widget-recommended [data-recsdk-redirect]')")
    root = tab.page.locator("#widget-recommended")
    return {"request_id": root.get_attribute("data-recsdk-request-id"),
            "variant": root.get_attribute("data-recsdk-variant"),
            "items": root.locator("li[data-recsdk-item-id]").count()}


def test_a_visit_from_home_to_an_order_is_joined_in_the_experiment_report(
        shop: Shop, open_tab: Callable[..., Tab], report_line: Callable[[str], None]
        ) -> None:
    tab = open_tab()
    page = tab.page
    tab.goto(shop.url + "/", "home")
    assert page.locator("#widget-trending li[data-recsdk-item-id]").count() >= 4
    served = recommended(tab)
    assert served["items"] >= 4 and served["variant"] in ("blend", "popular")
    request_id = served["request_id"]

    # seen: the widget's first row in view for over a second, then sent
    first = page.locator("#widget-recommended li[data-recsdk-position='1']")
    first.scroll_into_view_if_needed()
    page.wait_for_timeout(1_300)
    page.evaluate("() => window.recsdk.flush()")
    wait_until(lambda: feedback(shop, request_id, "impression"))

    # "not interested" in a trending item: logged, and the item leaves the page
    trending = page.locator("#widget-trending")
    unwanted = trending.locator("li[data-recsdk-position='1']")
    unwanted.locator("button.not-interested").click()
    assert unwanted.is_hidden()
    (dismissed,) = wait_until(lambda: feedback(
        shop, trending.get_attribute("data-recsdk-request-id"), "not_interested"))
    assert dismissed.item_id == unwanted.get_attribute("data-recsdk-item-id")

    # the click: straight to the product (the script logs it), with the list's rid/pos
    card = page.locator("#widget-recommended li[data-recsdk-position='2']")
    item = card.get_attribute("data-recsdk-item-id")
    link = card.locator("a.card")
    href = link.get_attribute("href") or ""
    assert "/api/v1/r?" in (link.get_attribute("data-recsdk-redirect") or "")
    assert urlsplit(href).path == f"/p/{item}" and f"rid={request_id}&pos=2" in href
    clicked_at: list[float] = []  # when the browser dispatched the click (epoch ms)
    page.on("console", lambda m: clicked_at.append(float(m.text.split()[-1]))
            if m.text.startswith("clicked at ") else None)
    page.evaluate("() => document.addEventListener('click', () => console.log("
                  "'clicked at ' + (performance.timeOrigin + performance.now())), true)")
    tab.navigate(link.click, "product")
    arm = wait_until(lambda: (a := home_arm(shop, served["variant"])) and a.clicks and a,
                     every_s=0.005)
    counted = time.time()
    wait_until(lambda: clicked_at)
    report_line(f"browser tests: from the click in the browser to its count in the "
                f"experiment report: {counted * 1000 - clicked_at[0]:.0f} ms")
    assert arm.clicks == 1
    assert urlsplit(page.url).path == f"/p/{item}"

    page.check("form.review input[name=rating][value='4']")
    page.fill("form.review textarea", "Just what I was looking for.")
    tab.navigate(lambda: page.click("form.review button[type=submit]"), "rated")
    assert "Thank you for rating" in page.inner_text(".flash-success")

    tab.navigate(lambda: page.click("form.buy button[type=submit]"), "cart")
    assert "Added “" in page.inner_text(".flash-success")
    tab.navigate(lambda: page.click("text=Check out"), "login")
    page.fill("input[name=account]", ACCOUNT)
    page.fill("input[name=password]", PASSWORD)
    tab.navigate(lambda: page.click("form.login button[type=submit]"), "checkout")
    assert urlsplit(page.url).path == "/checkout"
    tab.navigate(lambda: page.click("text=Place order"), "order")
    assert "Thank you! Order" in page.inner_text(".flash-success")
    order_id = int(urlsplit(page.url).path.rsplit("/", 1)[1])

    sdk = recsdk_ext.sdk(shop.app)
    sdk.request_log.flush()
    assert request_id in sdk.store.request_info([request_id])
    with shop.app.app_context():
        (line,) = [li for o in _orders(shop) if o.id == order_id for li in o.lines]
    rows = feedback(shop, request_id)
    kinds = [r.type for r in rows]
    assert kinds.count("click") == 1 and kinds.count("add_to_cart") == 1
    assert kinds.count("purchase") == 1 and kinds.count("impression") >= 1
    assert [r.value for r in rows if r.type == "rating"] == [4.0]
    assert {r.item_id for r in rows if r.type != "impression"} == {item}
    assert {r.variant for r in rows} == {served["variant"]}
    (bought,) = [r for r in rows if r.type == "purchase"]
    assert (bought.user_id, bought.position, bought.value) == (ACCOUNT, 2, line.total)
    assert refused(shop, "replay") == 0  # the click went in once, by the script alone

    arm = home_arm(shop, served["variant"])
    assert (arm.exposures, arm.seen_exposures, arm.clicks, arm.add_to_carts) == (1, 1, 1, 1)
    assert (arm.purchases, arm.feedback_purchases, arm.attributed_purchases) == (1, 1, 0)
    assert arm.revenue == line.total
    assert tab.errors == []
    assert len(tab.shots) == 7


def _orders(shop: Shop) -> list[Any]:
    from demo_shop.orders import orders_of

    return orders_of(current_shop().engine, ACCOUNT)


def test_a_click_without_javascript_goes_through_the_logging_redirect_once(
        shop: Shop, open_tab: Callable[..., Tab]) -> None:
    tab = open_tab(java_script_enabled=False)
    page = tab.page
    tab.goto(shop.url + "/", "home-without-script")
    root = page.locator("#widget-recommended")
    request_id = root.get_attribute("data-recsdk-request-id")
    link = root.locator("li[data-recsdk-position='1'] a.card")
    href = link.get_attribute("href") or ""
    assert href.startswith("/api/v1/r?")  # nothing rewrote it
    item = parse_qs(urlsplit(href).query)["item"][0]
    tab.navigate(link.click, "product-without-script")
    assert urlsplit(page.url).path == f"/p/{item}"
    assert [(r.type, r.item_id, r.position) for r in feedback(shop, request_id)] == [
        ("click", item, 1)]

    # the same link again, as a plain HTTP GET with this browser's cookies: a replay
    cookies = "; ".join(f"{c['name']}={c['value']}" for c in page.context.cookies())
    address = urlsplit(shop.url)
    conn = http.client.HTTPConnection(address.hostname, address.port, timeout=10)
    conn.request("GET", href.replace("&amp;", "&"), headers={"Cookie": cookies})
    answer = conn.getresponse()
    assert answer.status == 302 and answer.getheader("Location").startswith(f"/p/{item}?")
    conn.close()
    assert len(feedback(shop, request_id, "click")) == 1
    assert refused(shop, "replay") == 1


def test_a_failing_recsdk_leaves_working_pages_without_script_errors(
        shop: Shop, open_tab: Callable[..., Tab], monkeypatch) -> None:
    sdk = recsdk_ext.sdk(shop.app)

    def down(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("recsdk's database is down")

    monkeypatch.setattr(sdk, "recommend", down)
    monkeypatch.setattr(sdk, "similar_items", down)
    tab = open_tab()
    page = tab.page
    tab.goto(shop.url + "/", "home-recsdk-down")
    fallback = page.locator("#widget-recommended")
    assert fallback.get_attribute("data-shop-fallback") == "true"
    assert "Deals of the day" in fallback.inner_text()
    assert fallback.locator("a.card").count() == 8
    assert page.locator("#widget-trending").count() == 0
    assert page.evaluate("() => window.recsdk.version") == "1"  # the script ran, idle
    tab.navigate(lambda: fallback.locator("a.card").first.click(), "product-recsdk-down")
    assert page.locator("form.buy, .stock.out").count() >= 1
    assert page.locator(".widget").count() == 0
    page.wait_for_timeout(300)
    assert tab.errors == []


def test_the_embeddable_widget_renders_on_a_page_of_another_site(
        shop: Shop, open_tab: Callable[..., Tab], other_site: Callable[[str], str]) -> None:
    html = (f'<!doctype html><html><head><meta charset="utf-8"><title>A partner page'
            f'</title><link rel="icon" href="data:,"></head><body><h1>Another stack</h1>'
            f'<p>One script tag:</p>'
            f'<script src="{shop.url}/api/v1/static/recsdk.js" defer data-recsdk-widget '
            f'data-placement="trending" data-k="4" data-title="Trending at the shop" '
            f'data-item-url="{shop.url}/p/{{id}}" data-image-base="{shop.url}/" '
            f'data-currency="EUR"></script></body></html>')
    tab = open_tab()
    page = tab.page
    page.goto(other_site(html))
    page.wait_for_selector(".recsdk-widget .recsdk-item")
    tab.snap("partner-page-widget")
    widget = page.locator(".recsdk-widget")
    assert widget.locator("h3.recsdk-title").inner_text() == "Trending at the shop"
    items = widget.locator("li.recsdk-item")
    assert items.count() == 4
    assert re.search(r"€|EUR", items.first.locator(".recsdk-price").inner_text())
    assert (items.first.locator("a.recsdk-link").get_attribute("href") or "").startswith(
        f"{shop.url}/p/")
    request_id = widget.get_attribute("data-recsdk-request-id")
    page.wait_for_timeout(1_300)  # the list in view for over a second
    page.evaluate("() => window.recsdk.flush()")
    seen = wait_until(lambda: feedback(shop, request_id, "impression"))
    assert {r.position for r in seen} <= {1, 2, 3, 4}
    assert tab.errors == []
