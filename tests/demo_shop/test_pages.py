"""Every page of the storefront renders with data, its widgets carry served lists, and
bad addresses and filters are answered with the shop's own pages naming the problem."""

from __future__ import annotations

import re

from flask import Flask
from flask.testing import FlaskClient

from demo_shop.extensions import current_shop, recsdk_ext
from tests.demo_shop.conftest import EVENTS, add_to_cart, login, widget


def prices(html: str) -> list[float]:
    """The prices of the page's product grid (not of its widgets), in order."""
    grid = html.split('<ul class="cards grid">', 1)[1]
    return [float(p.replace(",", "")) for p in re.findall(r'class="price">€([\d,.]+)<', grid)]


def test_the_setup_command_loaded_and_trained(template) -> None:
    _, _, output = template
    assert f"synthetic shop: 85 categories, 300 products, 75 accounts, {EVENTS:,} events" in (
        output)
    assert re.search(r"trained run [0-9a-f]{12} on 3,000 interactions", output)


def test_home_shows_both_widgets_with_served_lists(client: FlaskClient) -> None:
    page = client.get("/")
    assert page.status_code == 200
    recommended, trending = widget(page.text, "recommended"), widget(page.text, "trending")
    assert recommended["attrs"]["data-recsdk-placement"] == "home"
    assert recommended["attrs"]["data-recsdk-variant"] in ("blend", "popular")
    assert trending["attrs"]["data-recsdk-placement"] == "trending"
    for found in (recommended, trending):
        assert re.fullmatch(r"[0-9a-f]{32}", found["attrs"]["data-recsdk-request-id"])
        assert len(found["items"]) >= 4
        assert [p for _, p in found["items"]] == sorted(p for _, p in found["items"])
    assert "Electronics" in page.text  # the departments


def test_category_pages_filter_sort_and_page(app: Flask, client: FlaskClient) -> None:
    page = client.get("/c/electronics")
    assert page.status_code == 200 and "<h1>Electronics</h1>" in page.text
    assert re.search(r"(\d+) products", page.text)
    picks = widget(page.text, "top-picks")
    assert picks["attrs"]["data-recsdk-placement"] == "category"
    with app.app_context():
        tree = current_shop().catalogue.tree()
        shelf = set(current_shop().catalogue.available_ids(tree.subtree("electronics")))
    assert picks["items"] and {i for i, _ in picks["items"]} <= shelf

    cheap = client.get("/c/electronics?min_price=10&max_price=60&sort=price_asc&in_stock=1")
    found = prices(cheap.text)
    assert found and all(10 <= p <= 60 for p in found) and found == sorted(found)
    assert "Out of stock" not in cheap.text.split('<ul class="cards grid">', 1)[1]
    dear = prices(client.get("/c/electronics?sort=price_desc").text)
    assert dear == sorted(dear, reverse=True)
    total = int(re.search(r"(\d+) products", page.text).group(1))
    second = client.get("/c/electronics?page=2")
    assert second.status_code == 200 and ("Page 2 of" in second.text) == (total > 24)
    leaf = re.search(r'class="chips".*?href="/c/([^"]+)"', page.text, flags=re.S).group(1)
    assert client.get(f"/c/{leaf}").status_code == 200


def test_search_finds_titles_and_descriptions(app: Flask, client: FlaskClient) -> None:
    with app.app_context():
        some = current_shop().catalogue.product("i010")
    word = some.title.split()[1]  # the brand
    page = client.get(f"/search?q={word.lower()}")
    assert page.status_code == 200 and f"Results for “{word.lower()}”" in page.text
    assert "/p/i010" in page.text
    assert "0 products" in client.get("/search?q=%25_%25").text  # wildcards are text
    assert "Type a word" in client.get("/search").text


def test_the_product_page_shows_similar_and_bought_together(app: Flask,
                                                             client: FlaskClient) -> None:
    page = client.get("/p/i010")
    assert page.status_code == 200 and 'name="item_id" value="i010"' in page.text
    similar, together = widget(page.text, "similar"), widget(page.text, "bought-together")
    assert similar["attrs"]["data-recsdk-placement"] == "similar"
    assert together["attrs"]["data-recsdk-placement"] == "bought_together"
    for found in (similar, together):
        assert found["items"] and "i010" not in [i for i, _ in found["items"]]


def test_cart_checkout_and_order_pages_render(client: FlaskClient) -> None:
    assert "Your cart is empty" in client.get("/cart").text
    add_to_cart(client, "i010")
    cart = client.get("/cart")
    assert cart.status_code == 200 and "/p/i010" in cart.text
    complete = widget(cart.text, "complete")
    assert complete["attrs"]["data-recsdk-placement"] == "cart"
    assert "i010" not in [i for i, _ in complete["items"]]
    login(client)
    assert client.get("/checkout").status_code == 200
    assert client.get("/orders").status_code == 200
    assert client.get("/login").status_code == 200


def test_every_widget_list_was_logged_as_served(app: Flask, client: FlaskClient) -> None:
    ids: dict[str, str] = {}
    add_to_cart(client, "i010")
    for path, key in (("/", "recommended"), ("/", "trending"), ("/p/i010", "similar"),
                      ("/p/i010", "bought-together"), ("/cart", "complete"),
                      ("/c/electronics", "top-picks")):
        found = widget(client.get(path).text, key)
        ids[found["attrs"]["data-recsdk-request-id"]] = found["attrs"][
            "data-recsdk-placement"]
    sdk = recsdk_ext.sdk(app)
    sdk.request_log.flush()
    served = sdk.store.request_info(list(ids))
    assert {r: served[r]["placement"] for r in ids} == ids


def test_placeholder_images_are_drawn_locally(client: FlaskClient) -> None:
    image = client.get("/img/i010.svg")
    assert image.status_code == 200 and image.mimetype == "image/svg+xml"
    assert image.text.startswith("<svg") and "hsl(" in image.text
    assert image.headers["Cache-Control"] in ("public, max-age=86400", "max-age=86400, public")
    assert client.get("/img/nope.svg").status_code == 404
    assert client.get("/static/shop.css").status_code == 200


def test_bad_addresses_and_filters_get_the_shops_pages(client: FlaskClient) -> None:
    missing = client.get("/p/no-such-item")
    assert missing.status_code == 404 and "There is no product &#39;no-such-item&#39;" in (
        missing.text)
    assert client.get("/c/no-such-category").status_code == 404
    assert "<h1>Not Found</h1>" in client.get("/nowhere").text
    for query, message in (
            ("min_price=abc", "min_price must be a number, got &#39;abc&#39;"),
            ("min_price=50&max_price=10", "min_price (50) is above max_price (10)"),
            ("max_price=-1", "max_price must be between 0 and"),
            ("sort=cheapest", "sort must be one of featured, price_asc"),
            ("page=0", "page must be a whole number from 1 to 10000")):
        page = client.get(f"/c/electronics?{query}")
        assert page.status_code == 400 and message in page.text, query
    long = client.get("/search?q=" + "x" * 201)
    assert long.status_code == 400 and "at most 200" in long.text


def test_the_rest_api_answers_in_the_same_app(client: FlaskClient) -> None:
    answer = client.get("/api/v1/recommendations?user_id=u01&k=3")
    assert answer.status_code == 200 and len(answer.json["items"]) == 3
    assert client.get("/api/v1/recommendations?user_id=u01&placement=cart&cart=i010"
                      ).status_code == 200
    assert client.get("/api/v1/items/i010/similar?k=3").status_code == 200
    assert client.get("/healthz").json["trained"] is True
    assert "/api/v1/events" in client.get("/api/openapi.json").json["paths"]
    assert client.get("/api/v1/nope").status_code == 404
