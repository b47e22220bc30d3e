"""Carts, checkout, orders and accounts: the shop's side, and what recsdk is told."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, update

from demo_shop import db
from demo_shop.extensions import current_shop, recsdk_ext
from tests.demo_shop.conftest import add_to_cart, csrf, login, visitor_of


def stock_of(app: Flask, item_id: str) -> int:
    with app.app_context():
        product = current_shop().catalogue.product(item_id)
    assert product is not None
    return product.stock


def set_stock(app: Flask, item_id: str, stock: int) -> None:
    with app.app_context(), current_shop().engine.begin() as conn:
        conn.execute(update(db.products).where(db.products.c.id == item_id).values(
            stock=stock))


def count(app: Flask, table: Any) -> int:
    with app.app_context(), current_shop().engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def events_of(app: Flask, **where: Any) -> list[dict[str, Any]]:
    frame = recsdk_ext.sdk(app).store.events_frame()
    for column, value in where.items():
        frame = frame[frame[column] == value]
    return frame.to_dict("records")


def test_a_purchase_from_cart_to_order_history(app: Flask, client: FlaskClient,
                                               stocked: list[str]) -> None:
    A, B = stocked[:2]
    before = {i: stock_of(app, i) for i in (A, B)}
    assert add_to_cart(client, A, 2).status_code == 302
    add_to_cart(client, B)
    visitor = visitor_of(app, client)
    assert 'class="badge">3</span>' in client.get("/").text

    answer = login(client, "u05", next_path="/cart")
    assert answer.status_code == 302 and answer.headers["Location"] == "/cart"
    cart = client.get("/cart").text  # the anonymous cart moved into the account's
    assert f"/p/{A}" in cart and f"/p/{B}" in cart
    with app.app_context(), current_shop().engine.connect() as conn:
        assert dict(conn.execute(select(db.cart_lines.c.item_id, db.cart_lines.c.quantity)
                                 .where(db.cart_lines.c.account_id == "u05")).all()) == {
            A: 2, B: 1}

    placed = client.post("/checkout", data={"csrf_token": csrf(client, "/checkout")})
    assert placed.status_code == 302 and placed.headers["Location"].startswith("/orders/")
    order_page = client.get(placed.headers["Location"])
    assert "Thank you! Order" in order_page.text and f"/p/{A}" in order_page.text
    history = client.get("/orders")
    assert placed.headers["Location"] in history.text
    assert "Your cart is empty" in client.get("/cart").text

    assert {i: stock_of(app, i) for i in before} == {A: before[A] - 2,
                                                     B: before[B] - 1}
    sdk = recsdk_ext.sdk(app)
    frame = sdk.store.items_frame().set_index("id")  # recsdk was told the new stock
    assert int(frame.loc[A, "stock"]) == before[A] - 2
    with app.app_context():
        price = current_shop().catalogue.product(A).price
    bought = events_of(app, user_id="u05", type="purchase", item_id=A)
    assert len(bought) == 1 and bought[0]["value"] == pytest.approx(round(2 * price, 2))
    assert bought[0]["session_id"] == visitor
    carts = events_of(app, type="add_to_cart", session_id=visitor)
    assert {e["item_id"] for e in carts} == {A, B}
    assert {e["user_id"] for e in carts} == {visitor}  # anonymous then


def test_checkout_refuses_an_item_that_sold_out_naming_it(
        app: Flask, client: FlaskClient, stocked: list[str]) -> None:
    A, B = stocked[:2]
    add_to_cart(client, A)
    add_to_cart(client, B)
    login(client)
    set_stock(app, B, 0)  # someone else bought the last one meanwhile
    kept = stock_of(app, A)
    with app.app_context():
        title = current_shop().catalogue.product(B).title
    refused = client.post("/checkout", data={"csrf_token": csrf(client, "/checkout")})
    assert refused.status_code == 409
    assert f"“{title}” is out of stock; remove it from your cart" in refused.text
    assert count(app, db.orders) == 0 and count(app, db.order_lines) == 0
    assert stock_of(app, A) == kept  # nothing of the order was taken
    visitor = visitor_of(app, client)
    assert events_of(app, type="purchase", session_id=visitor) == []

    set_stock(app, B, 1)
    client.post("/cart/update", data={"item_id": B, "quantity": "3",
                                      "csrf_token": csrf(client)})
    short = client.post("/checkout", data={"csrf_token": csrf(client, "/checkout")})
    assert short.status_code == 409 and f"Only 1 of “{title}” left (your cart has 3)" in (
        short.text)


def test_cart_changes_and_refusals(app: Flask, client: FlaskClient, stocked: list[str]) -> None:
    A, C = stocked[:2]
    set_stock(app, C, 0)
    refused = add_to_cart(client, C)
    assert refused.headers["Location"] == f"/p/{C}"
    assert "is out of stock" in client.get(f"/p/{C}").text
    bad = client.post("/cart/add", data={"item_id": A, "quantity": "lots",
                                         "csrf_token": csrf(client)})
    assert bad.status_code == 302
    assert "The quantity must be a whole number from 1 to 99; got &#39;lots&#39;" in (
        client.get(f"/p/{A}").text)
    assert client.post("/cart/add", data={"item_id": "nope", "csrf_token": csrf(client)}
                       ).status_code == 400
    add_to_cart(client, A, 98)
    add_to_cart(client, A, 5)
    assert 'value="99"' in client.get("/cart").text  # capped
    client.post("/cart/update", data={"item_id": A, "quantity": "0",
                                      "csrf_token": csrf(client)})
    assert "Your cart is empty" in client.get("/cart").text
    assert events_of(app, type="remove_from_cart", item_id=A)
    assert client.post("/cart/update", data={"item_id": A, "quantity": "1",
                                             "csrf_token": csrf(client)}).status_code == 400


def test_pages_of_a_customer_need_a_login(client: FlaskClient) -> None:
    for path in ("/orders", "/orders/1", "/checkout"):
        answer = client.get(path)
        assert answer.status_code == 302, path
        assert answer.headers["Location"] == f"/login?next={path}"
    wrong = login(client, "u01", "not-the-password")
    assert wrong.status_code == 401 and "Unknown account or wrong password" in wrong.text
    assert login(client, "nobody").status_code == 401
    assert login(client, "u01", next_path="/orders").headers["Location"] == "/orders"
    assert "No orders yet" in client.get("/orders").text
    assert client.get("/orders/12345").status_code == 404
    client.post("/logout", data={"csrf_token": csrf(client)})
    assert client.get("/orders").status_code == 302


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/",
                                    "javascript:alert(1)", "evil"])
def test_login_never_sends_a_visitor_to_another_site(client: FlaskClient,
                                                     target: str) -> None:
    assert login(client, next_path=target).headers["Location"] == "/"


def test_another_accounts_order_stays_private(app: Flask, stocked: list[str]) -> None:
    A = stocked[0]
    first = app.test_client()
    add_to_cart(first, A)
    login(first, "u02")
    placed = first.post("/checkout", data={"csrf_token": csrf(first, "/checkout")})
    order = placed.headers["Location"]
    second = app.test_client()
    login(second, "u03")
    assert second.get(order).status_code == 404


def test_forms_without_the_sessions_token_are_refused(client: FlaskClient,
                                                      stocked: list[str]) -> None:
    A = stocked[0]
    for path, data in (("/cart/add", {"item_id": A}),
                       ("/login", {"account": "u01", "password": "demo"}),
                       ("/cart/add", {"item_id": A, "csrf_token": "forged"})):
        answer = client.post(path, data=data)
        assert answer.status_code == 400 and "csrf_token" in answer.text
