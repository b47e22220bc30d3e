"""Checkout and order history.

An order is written in one transaction that first takes the stock: each line is a
conditional ``UPDATE ... SET stock = stock - n WHERE stock >= n``, so two customers
buying the last item cannot both get it, and a line that cannot be served rolls the
whole order back and names the product. The writes come before any read in the
transaction, so on SQLite it holds the write lock from its first statement. Each line
keeps the recommended list that sold it (from the cart line), for the purchase feedback.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, insert, select, update

from demo_shop import db
from demo_shop.attribution import Source


class OutOfStock(Exception):
    """A cart line the stock cannot serve; the message names the product."""

    def __init__(self, item_id: str, title: str, available: int, wanted: int) -> None:
        self.item_id, self.title, self.available, self.wanted = (item_id, title, available,
                                                                 wanted)
        if available <= 0:
            message = f"“{title}” is out of stock; remove it from your cart to check out."
        else:
            message = (f"Only {available} of “{title}” left (your cart has {wanted}); "
                       "lower the quantity to check out.")
        super().__init__(message)


@dataclass(frozen=True)
class OrderLine:
    item_id: str
    title: str
    unit_price: float
    quantity: int
    #: the recommended list the product was reached from (None: found by the buyer)
    source: Source | None = None

    @property
    def total(self) -> float:
        return round(self.unit_price * self.quantity, 2)


@dataclass(frozen=True)
class Order:
    id: int
    account_id: str
    created_at: datetime
    total: float
    lines: list[OrderLine]


def place_order(engine: Engine, account_id: str, lines: Mapping[str, int],
                sources: Mapping[str, Source] | None = None
                ) -> tuple[Order, dict[str, int]]:
    """Take the stock and write the order; returns it and each product's new stock.
    ``sources``: the list each line's product was reached from (the cart's).

    Raises :class:`OutOfStock` (nothing written) when a line cannot be served, and
    ``ValueError`` for an empty cart.
    """
    if not lines:
        raise ValueError("The cart is empty.")
    p = db.products
    with engine.begin() as conn:
        for item_id, quantity in sorted(lines.items()):
            taken = conn.execute(update(p).where(
                p.c.id == item_id, p.c.active.is_(True), p.c.stock >= quantity,
            ).values(stock=p.c.stock - quantity))
            if taken.rowcount != 1:
                row = conn.execute(select(p.c.title, p.c.stock, p.c.active).where(
                    p.c.id == item_id)).first()
                title = row.title if row is not None else item_id
                available = int(row.stock) if row is not None and row.active else 0
                raise OutOfStock(item_id, title, available, quantity)
        rows = conn.execute(select(p.c.id, p.c.title, p.c.price, p.c.stock).where(
            p.c.id.in_(list(lines)))).all()
        sources = sources or {}
        sold = [OrderLine(r.id, r.title, float(r.price), lines[r.id], sources.get(r.id))
                for r in sorted(rows, key=lambda r: r.id)]
        total = round(sum(line.total for line in sold), 2)
        created = db.utcnow()
        order_id = conn.execute(insert(db.orders).values(
            account_id=account_id, created_at=created, total=total)).inserted_primary_key[0]
        conn.execute(insert(db.order_lines), [
            {"order_id": order_id, "item_id": line.item_id, "title": line.title,
             "unit_price": line.unit_price, "quantity": line.quantity,
             "request_id": line.source.request_id if line.source else None,
             "position": line.source.position if line.source else None} for line in sold])
    stock = {r.id: int(r.stock) for r in rows}
    return Order(int(order_id), account_id, created, total, sold), stock


def orders_of(engine: Engine, account_id: str, order_id: int | None = None) -> list[Order]:
    """The account's orders (or its order ``order_id``), newest first, with lines."""
    o, line = db.orders, db.order_lines
    mine = o.c.account_id == account_id
    if order_id is not None:
        mine = mine & (o.c.id == order_id)
    with engine.connect() as conn:
        heads = conn.execute(select(o).where(mine).order_by(o.c.id.desc())).all()
        found = conn.execute(select(line).where(line.c.order_id.in_([h.id for h in heads]))
                             .order_by(line.c.order_id, line.c.item_id)).all()
    by_order: dict[int, list[OrderLine]] = {}
    for r in found:
        source = (Source(r.request_id, int(r.position))
                  if r.request_id is not None and r.position is not None else None)
        by_order.setdefault(r.order_id, []).append(
            OrderLine(r.item_id, r.title, float(r.unit_price), int(r.quantity), source))
    return [Order(h.id, h.account_id, h.created_at, float(h.total), by_order.get(h.id, []))
            for h in heads]


def order_of(engine: Engine, account_id: str, order_id: int) -> Order | None:
    """One of the account's orders (None for another account's: no peeking)."""
    found = orders_of(engine, account_id, order_id)
    return found[0] if found else None
