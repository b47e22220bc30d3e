"""Filling the shop: its own tables and, through recsdk's ingestion API, recsdk's copy.

A real shop already has products and customers and hands recsdk a copy; the demo
makes them. The synthetic shop (recsdk's generator: a category tree, products with
titles, descriptions, prices, discounts and stock, users with planted tastes and their
sessions) is the default catalogue; :mod:`demo_shop.clothing` adds a second one from
the Women's E-Commerce Clothing Reviews file. Loading is idempotent: rows the shop
already has are kept, and events are written only into a database that holds none.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd
from sqlalchemy import Engine, insert, select

from demo_shop import db
from recsdk import RecSDK
from recsdk.data.frames import ShopData
from recsdk.data.synthetic import generate_shop


@dataclass(frozen=True)
class LoadSummary:
    """What one catalogue added to the shop and to recsdk."""

    source: str
    categories: int
    products: int
    accounts: int
    events: int
    note: str = ""

    def line(self) -> str:
        text = (f"{self.source}: {self.categories} categories, {self.products} products, "
                f"{self.accounts} accounts, {self.events:,} events")
        return f"{text} ({self.note})" if self.note else text


def image_path(item_id: str) -> str:
    """Where the shop serves a product's placeholder image (made locally, no network)."""
    return f"/img/{item_id}.svg"


def load_synthetic(sdk: RecSDK, engine: Engine, *, events: int, seed: int,
                   password_hash: str) -> LoadSummary:
    """The synthetic shop of ``events`` events: into recsdk (catalogue, users, events)
    and into the shop's tables (categories, products, one account per user).

    Every demo account has the demo password; its hash is computed once and shared,
    which is fine for accounts whose password is printed on the login page.
    """
    shop = generate_shop(events, seed=seed)
    shop.items = shop.items.assign(image_url=[image_path(i) for i in shop.items["id"]])
    stored = sdk.store.count_events()
    # into a database with events, the catalogue and users only: the same shop again
    # would double every event (they carry no ids)
    data = ShopData(shop.categories, shop.items, shop.users) if stored else shop
    counts = data.write_to(sdk, validate=False)
    categories = add_categories(engine, shop.categories)
    products = add_products(engine, shop.items, "synthetic")
    names = {str(u): _account_name(str(u), a) for u, a in zip(
        shop.users["id"], shop.users["attributes"], strict=True)}
    accounts = add_accounts(engine, names, password_hash)
    note = (f"the database already held {stored:,} events, so none were added"
            if stored else "")
    return LoadSummary("synthetic shop", categories, products, accounts, counts.events, note)


def load_catalogue(sdk: RecSDK, engine: Engine, data: ShopData, source: str) -> LoadSummary:
    """A prepared catalogue (:mod:`demo_shop.clothing`) into recsdk and the shop."""
    counts = data.write_to(sdk)
    return LoadSummary(source, add_categories(engine, data.categories),
                       add_products(engine, data.items, source), 0, counts.events)


def add_categories(engine: Engine, frame: pd.DataFrame) -> int:
    """Insert the categories the shop does not have, parents first; return how many."""
    rows = [{"id": str(r["id"]), "name": str(r["name"] if pd.notna(r["name"]) else r["id"]),
             "parent_id": None if pd.isna(r["parent_id"]) else str(r["parent_id"])}
            for r in frame.to_dict("records")]
    depth = {r["id"]: r["parent_id"] for r in rows}

    def level(node: str | None) -> int:
        n = 0
        while node is not None and n < 64:
            node, n = depth.get(node), n + 1
        return n

    rows.sort(key=lambda r: level(r["id"]))
    return _insert_new(engine, db.categories, rows)


def add_products(engine: Engine, frame: pd.DataFrame, source: str) -> int:
    """Insert the products the shop does not have; return how many."""
    rows = []
    for r in frame.to_dict("records"):
        original = r.get("original_price")
        rows.append({
            "id": str(r["id"]), "title": str(r["title"]),
            "description": str(r.get("description") or ""),
            "category_id": None if pd.isna(r.get("category_id")) else str(r["category_id"]),
            "price": float(r["price"]),
            "original_price": None if original is None or pd.isna(original) else float(
                original),
            "stock": int(r["stock"]), "active": bool(r.get("active", True)),
            "attributes": dict(r.get("attributes") or {}), "source": source,
        })
    return _insert_new(engine, db.products, rows)


def add_accounts(engine: Engine, names: Mapping[str, str], password_hash: str) -> int:
    """Demo accounts (id: display name) the shop does not have; return how many."""
    return _insert_new(engine, db.accounts, [
        {"id": i, "name": n, "password_hash": password_hash} for i, n in names.items()])


def _insert_new(engine: Engine, table: Any, rows: list[dict[str, Any]]) -> int:
    with engine.begin() as conn:
        have = set(conn.execute(select(table.c.id)).scalars())
        new = [r for r in rows if r["id"] not in have]
        for start in range(0, len(new), 1000):
            conn.execute(insert(table), new[start : start + 1000])
    return len(new)


def _account_name(user_id: str, attributes: Any) -> str:
    attrs = attributes if isinstance(attributes, Mapping) else {}
    where = attrs.get("city")
    return f"{user_id} ({where}, {attrs['age']})" if where and "age" in attrs else user_id
