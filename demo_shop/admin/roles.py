"""Who may open the dashboard: accounts listed in ``shop_admins``, logged in as usual.

The demo has one such account, ``admin``, made (or given the configured password) at
start-up. Every dashboard request is checked before its view runs: a visitor who is
not logged in goes to the login page (and comes back afterwards), a logged-in customer
is refused with 403.
"""

from __future__ import annotations

from flask import abort, flash, redirect, request, url_for
from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError
from werkzeug.security import check_password_hash, generate_password_hash
from werkzeug.wrappers import Response

from demo_shop import accounts, db
from demo_shop.extensions import current_shop

#: The demo's admin account (its password: ``DEMO_SHOP_ADMIN_PASSWORD``).
ADMIN_ID = "admin"
ADMIN_NAME = "Shop admin"


def ensure_admin_account(engine: Engine, password: str, account_id: str = ADMIN_ID) -> None:
    """Make ``account_id`` an admin whose password is ``password``: the account is
    created, or its password hash replaced when it no longer matches. Several workers
    starting at once may race; the one that loses finds the rows made."""
    if not password:
        raise ValueError("the admin password must not be empty (DEMO_SHOP_ADMIN_PASSWORD)")
    t, a = db.accounts, db.admins
    with engine.connect() as conn:
        current = conn.execute(select(t.c.password_hash).where(t.c.id == account_id)).scalar()
        listed = conn.execute(select(a.c.account_id).where(a.c.account_id == account_id)
                              ).first() is not None
    try:
        with engine.begin() as conn:
            if current is None:
                conn.execute(t.insert().values(id=account_id, name=ADMIN_NAME,
                                               password_hash=generate_password_hash(password)))
            elif not check_password_hash(current, password):
                conn.execute(t.update().where(t.c.id == account_id).values(
                    password_hash=generate_password_hash(password)))
            if not listed:
                conn.execute(a.insert().values(account_id=account_id))
    except IntegrityError:  # another worker made them meanwhile
        pass


def is_admin(engine: Engine, account_id: str | None) -> bool:
    if account_id is None:
        return False
    a = db.admins
    with engine.connect() as conn:
        return conn.execute(select(a.c.account_id).where(a.c.account_id == account_id)
                            ).first() is not None


def require_admin() -> Response | None:
    """``before_request`` of the dashboard: the login page for visitors, 403 for
    customers, nothing (go on) for an admin."""
    account_id = accounts.current_account_id()
    if account_id is None:
        flash("Please log in with an admin account to open the dashboard.", "info")
        back = (request.full_path.rstrip("?") if request.method == "GET"
                else url_for("admin.dashboard"))  # a form's POST cannot be replayed
        return redirect(url_for("shop.login", next=back))
    if not is_admin(current_shop().engine, account_id):
        abort(403, "The dashboard is for the shop's administrators; you are logged in as "
                   "a customer. Log out and log in with an admin account.")
    return None
