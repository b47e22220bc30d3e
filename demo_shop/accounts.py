"""Demo accounts: log in, log out, and pages that need a customer.

Passwords are checked against werkzeug's salted hashes. The logged-in account's id is
kept in the signed session under ``user_id``, which is where recsdk's extension looks
for the user by default (``RECSDK_USER_SESSION_KEY``): the same id is the customer's
user id in recsdk, so recommendations and events follow the account.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import flash, redirect, request, session, url_for
from sqlalchemy import Engine, select
from werkzeug.security import check_password_hash

from demo_shop import db

SESSION_KEY = "user_id"
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Account:
    id: str
    name: str


def current_account_id() -> str | None:
    value = session.get(SESSION_KEY)
    return value if isinstance(value, str) else None


def authenticate(engine: Engine, account_id: str, password: str) -> Account | None:
    """The account when the password is its own; None otherwise (same answer for an
    unknown account, so the form does not tell which ids exist)."""
    t = db.accounts
    with engine.connect() as conn:
        row = conn.execute(select(t).where(t.c.id == account_id)).first()
    if row is None or not check_password_hash(row.password_hash, password):
        return None
    return Account(row.id, row.name)


def account(engine: Engine, account_id: str) -> Account | None:
    t = db.accounts
    with engine.connect() as conn:
        row = conn.execute(select(t.c.id, t.c.name).where(t.c.id == account_id)).first()
    return None if row is None else Account(row.id, row.name)


def demo_accounts(engine: Engine, limit: int = 5) -> list[Account]:
    """A few customer accounts to try, for the login page (not the admin's)."""
    t = db.accounts
    customers = t.c.id.not_in(select(db.admins.c.account_id))
    with engine.connect() as conn:
        rows = conn.execute(select(t.c.id, t.c.name).where(customers).order_by(t.c.id)
                            .limit(limit)).all()
    return [Account(r.id, r.name) for r in rows]


def safe_next(target: str | None) -> str:
    """Where to go after logging in: a path of this site, never another site."""
    if not target:
        return url_for("shop.home")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return url_for("shop.home")
    return target


def login_required(view: F) -> F:
    """Send anonymous visitors to the login page, and back here afterwards."""
    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if current_account_id() is None:
            flash("Please log in first.", "info")
            return redirect(url_for("shop.login", next=request.full_path.rstrip("?")))
        return view(*args, **kwargs)
    return wrapped  # type: ignore[return-value]
