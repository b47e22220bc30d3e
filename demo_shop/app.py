"""The demo shop's app factory: a Flask storefront that integrates recsdk through its
Flask extension only, as a shop's own backend would.

``create_app(config)`` takes Flask settings: the shop's (``DEMO_SHOP_*``, ``SECRET_KEY``)
and recsdk's (``RECSDK_*``, read by the extension). The shop's tables are created in
recsdk's database unless ``DEMO_SHOP_DATABASE_URL`` names another. Unless recsdk's
settings name an ``[api] beacon_secret``, the key that signs recsdk's list and visitor
tokens is derived from ``SECRET_KEY``, so that visitor cookies and the tokens in pages
stay valid as long as the shop's own sessions do (across restarts with a fixed key).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask, render_template, session
from werkzeug.exceptions import HTTPException

from demo_shop import accounts
from demo_shop.admin import init_admin
from demo_shop.cart import cart_for
from demo_shop.catalogue import Catalogue
from demo_shop.csrf import csrf_token
from demo_shop.db import create_tables
from demo_shop.extensions import SHOP, Shop, recsdk_ext
from demo_shop.views import bp
from recsdk.config import load_settings
from recsdk.flask_ext import sdk_arguments
from recsdk.storage.database import make_engine

log = logging.getLogger(__name__)

REPOSITORY = Path(__file__).resolve().parents[1]
#: recsdk's settings for the shop: the quick start's, with the shop's placements and
#: the home page experiment.
DEMO_CONFIG = REPOSITORY / "config" / "demo.toml"

DEFAULTS: dict[str, Any] = {
    "DEMO_SHOP_DATABASE_URL": None,      # None: the database recsdk uses
    "DEMO_SHOP_CLOTHING_CSV": None,      # path of reviews.csv: a second catalogue
    "DEMO_SHOP_PASSWORD": "demo",        # every demo account's password
    "DEMO_SHOP_PAGE_SIZE": 24,
    "DEMO_SHOP_CURRENCY": "€",
    "RECSDK_RECOMMEND_TIMEOUT_MS": 2_000,  # a widget waits this long at most
    "SESSION_COOKIE_HTTPONLY": True,
    "SESSION_COOKIE_SAMESITE": "Lax",
}


def create_app(config: Mapping[str, Any] | None = None, *,
               environ: Mapping[str, str] | None = None) -> Flask:
    """The shop, on recsdk's settings from ``RECSDK_CONFIG`` (default: the quick
    start's ``config/demo.toml``, or ``$RECSDK_CONFIG``) and the ``RECSDK_*``
    variables of ``environ`` (default ``os.environ``)."""
    environ = os.environ if environ is None else environ
    app = Flask(__name__)
    app.config.update(DEFAULTS)
    app.config["RECSDK_CONFIG"] = environ.get("RECSDK_CONFIG") or str(DEMO_CONFIG)
    app.config.update(config or {})
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = environ.get("DEMO_SHOP_SECRET_KEY") or _one_off_key()
    recsdk_ext.init_app(app, environ=_with_beacon_secret(app, environ))
    url = app.config["DEMO_SHOP_DATABASE_URL"] or recsdk_ext.sdk(app).settings.database_url
    engine = make_engine(url)
    create_tables(engine)
    app.extensions[SHOP] = Shop(engine, Catalogue(engine, int(app.config[
        "DEMO_SHOP_PAGE_SIZE"])))
    app.register_blueprint(bp)
    init_admin(app, environ)  # /admin: the dashboard, and the demo's admin account
    app.add_template_global(csrf_token)
    app.add_template_filter(_money(app.config["DEMO_SHOP_CURRENCY"]), "money")
    app.context_processor(_page_context)
    app.register_error_handler(HTTPException, _error_page)
    return app


def close_shop(app: Flask) -> None:
    """Close what the app holds: recsdk (served lists flushed) and the shop's engine."""
    recsdk_ext.close(app)
    shop = app.extensions.pop(SHOP, None)
    if shop is not None:
        shop.engine.dispose()


def _one_off_key() -> str:
    log.warning("demo shop: no SECRET_KEY (or DEMO_SHOP_SECRET_KEY): using a random one, "
                "so logins and anonymous carts end when the process stops")
    return secrets.token_urlsafe(32)


def _with_beacon_secret(app: Flask, environ: Mapping[str, str]) -> Mapping[str, str]:
    """``environ``, with ``RECSDK_API_BEACON_SECRET`` derived from the app's secret key
    when neither it nor recsdk's settings set one."""
    if environ.get("RECSDK_API_BEACON_SECRET"):
        return environ
    config, variables = sdk_arguments(app.config, environ)
    if load_settings(config, environ=variables).api["beacon_secret"]:
        return environ
    key = str(app.config["SECRET_KEY"]).encode()
    derived = hmac.new(key, b"demo_shop: recsdk beacon_secret", hashlib.sha256).hexdigest()
    return {**environ, "RECSDK_API_BEACON_SECRET": derived}


def _money(currency: str) -> Any:
    def money(value: float) -> str:
        return f"{currency}{value:,.2f}"
    return money


def _page_context() -> dict[str, Any]:
    """What every page's header shows: departments, the account and the cart size."""
    from flask import current_app

    shop: Shop = current_app.extensions[SHOP]
    account_id = accounts.current_account_id()
    account = accounts.account(shop.engine, account_id) if account_id else None
    if account_id and account is None:  # an account that no longer exists
        session.pop(accounts.SESSION_KEY, None)
    lines = cart_for(shop.engine, account.id if account else None).lines()
    return {"departments": shop.catalogue.tree().roots, "account": account,
            "cart_count": sum(lines.values())}


def _error_page(error: HTTPException) -> tuple[str, int]:
    return render_template("error.html", error=error), error.code or 500
