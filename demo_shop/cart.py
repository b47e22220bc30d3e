"""The cart: in the session cookie for anonymous visitors, in the shop's table once they
log in (a cart that follows the account across browsers). Logging in moves the
anonymous cart into the account's. A line may keep the recommended list its product was
reached from (:class:`~demo_shop.attribution.Source`), which checkout credits.
"""

from __future__ import annotations

from typing import Protocol

from flask import session
from sqlalchemy import Engine, delete, insert, select, update

from demo_shop import db
from demo_shop.attribution import Source

MAX_QUANTITY = 99
#: distinct products one cart may hold (the session cookie must stay small)
MAX_LINES = 50
SESSION_KEY = "cart"
SOURCES_KEY = "cart_sources"


class CartError(ValueError):
    """A cart change the shop refuses; the message says why."""


class Cart(Protocol):
    def lines(self) -> dict[str, int]: ...
    def sources(self) -> dict[str, Source]: ...
    def set(self, item_id: str, quantity: int, source: Source | None = None) -> None:
        """Set a line's quantity (0 removes it); a ``source`` replaces the line's, none
        keeps it (more units of a product credit the list it was first added from)."""
    def clear(self) -> None: ...


def quantity_of(text: str | None) -> int:
    """A quantity from a form, 1 to MAX_QUANTITY; anything else raises naming it."""
    value = (text or "1").strip()
    if not value.isdigit() or not 1 <= int(value) <= MAX_QUANTITY:
        raise CartError(f"The quantity must be a whole number from 1 to {MAX_QUANTITY}; "
                        f"got {value!r}.")
    return int(value)


def add(cart: Cart, item_id: str, quantity: int, source: Source | None = None) -> int:
    """Add ``quantity`` (capped at MAX_QUANTITY in all), from the list ``source`` if
    the product was reached from one; return the new quantity."""
    lines = cart.lines()
    if item_id not in lines and len(lines) >= MAX_LINES:
        raise CartError(f"A cart holds at most {MAX_LINES} different products.")
    new = min(MAX_QUANTITY, lines.get(item_id, 0) + quantity)
    cart.set(item_id, new, source)
    return new


class SessionCart:
    """An anonymous visitor's cart: ``{item_id: quantity}`` in the signed session."""

    def lines(self) -> dict[str, int]:
        stored = session.get(SESSION_KEY)
        if not isinstance(stored, dict):
            return {}
        return {str(k): int(v) for k, v in stored.items()
                if isinstance(v, int) and 0 < v <= MAX_QUANTITY}

    def sources(self) -> dict[str, Source]:
        stored = session.get(SOURCES_KEY)
        if not isinstance(stored, dict):
            return {}
        lines = self.lines()
        return {str(k): Source(v[0], v[1]) for k, v in stored.items()
                if k in lines and isinstance(v, list) and len(v) == 2
                and isinstance(v[0], str) and isinstance(v[1], int)}

    def set(self, item_id: str, quantity: int, source: Source | None = None) -> None:
        lines = self.lines()
        sources = {k: [s.request_id, s.position] for k, s in self.sources().items()}
        if quantity > 0:
            lines[item_id] = quantity
            if source is not None:
                sources[item_id] = [source.request_id, source.position]
        else:
            lines.pop(item_id, None)
            sources.pop(item_id, None)
        session[SESSION_KEY] = lines
        session[SOURCES_KEY] = sources

    def clear(self) -> None:
        session.pop(SESSION_KEY, None)
        session.pop(SOURCES_KEY, None)


class AccountCart:
    """A logged-in customer's cart, in ``shop_cart_lines``."""

    def __init__(self, engine: Engine, account_id: str) -> None:
        self.engine = engine
        self.account_id = account_id

    def lines(self) -> dict[str, int]:
        t = db.cart_lines
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.c.item_id, t.c.quantity).where(
                t.c.account_id == self.account_id).order_by(t.c.item_id)).all()
        return {r.item_id: int(r.quantity) for r in rows}

    def sources(self) -> dict[str, Source]:
        t = db.cart_lines
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.c.item_id, t.c.request_id, t.c.position).where(
                t.c.account_id == self.account_id, t.c.request_id.is_not(None))).all()
        return {r.item_id: Source(r.request_id, int(r.position)) for r in rows
                if r.position is not None}

    def set(self, item_id: str, quantity: int, source: Source | None = None) -> None:
        t = db.cart_lines
        mine = (t.c.account_id == self.account_id) & (t.c.item_id == item_id)
        values: dict[str, object] = {"quantity": quantity}
        if source is not None:
            values.update(request_id=source.request_id, position=source.position)
        with self.engine.begin() as conn:
            if quantity <= 0:
                conn.execute(delete(t).where(mine))
            elif conn.execute(update(t).where(mine).values(**values)).rowcount == 0:
                conn.execute(insert(t).values(account_id=self.account_id, item_id=item_id,
                                              **values))

    def clear(self) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(db.cart_lines).where(
                db.cart_lines.c.account_id == self.account_id))


def cart_for(engine: Engine, account_id: str | None) -> Cart:
    return SessionCart() if account_id is None else AccountCart(engine, account_id)


def merge_into_account(engine: Engine, account_id: str) -> None:
    """At login: the anonymous cart's lines join the account's (quantities add up)."""
    anonymous = SessionCart()
    account = AccountCart(engine, account_id)
    sources = anonymous.sources()
    for item_id, quantity in anonymous.lines().items():
        try:
            add(account, item_id, quantity, sources.get(item_id))
        except CartError:
            break  # the account's cart is full; what did not fit stays out
    anonymous.clear()
