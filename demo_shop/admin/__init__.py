"""The shop's admin dashboard (``/admin``): plugins and their health, model runs with
retrain and rollback, experiments' live reports, and serving health over time.

:func:`init_admin` is all an app needs: it makes the demo's admin account, registers
the blueprint, a header link for admins and the number formats the pages use.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

from flask import Flask

from demo_shop import accounts
from demo_shop.admin.roles import ADMIN_ID, ensure_admin_account, is_admin
from demo_shop.admin.views import bp
from demo_shop.extensions import current_shop

log = logging.getLogger(__name__)

#: The admin account's password when neither the app's config nor the environment sets
#: ``DEMO_SHOP_ADMIN_PASSWORD`` (a demo's: set your own before anyone else can reach it).
DEFAULT_PASSWORD = "demo"


def init_admin(app: Flask, environ: Mapping[str, str]) -> None:
    """Add the dashboard to the shop's ``app`` (after its tables exist)."""
    password = (app.config.get("DEMO_SHOP_ADMIN_PASSWORD")
                or environ.get("DEMO_SHOP_ADMIN_PASSWORD") or DEFAULT_PASSWORD)
    if password == DEFAULT_PASSWORD and not app.testing:
        log.warning("demo shop: the admin account %r has the demo password %r; set "
                    "DEMO_SHOP_ADMIN_PASSWORD before anyone else can reach the shop",
                    ADMIN_ID, DEFAULT_PASSWORD)
    with app.app_context():
        ensure_admin_account(current_shop().engine, password)
    app.register_blueprint(bp)
    app.context_processor(_admin_link)
    app.add_template_filter(percent, "admin_pct")
    app.add_template_filter(number, "admin_num")
    app.add_template_filter(duration, "admin_duration")


def _admin_link() -> dict[str, Any]:
    """``is_admin`` for the header's dashboard link."""
    account_id = accounts.current_account_id()
    return {"is_admin": account_id is not None and is_admin(current_shop().engine, account_id)}


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def percent(value: float | None, digits: int = 1) -> str:
    """A share as a percentage; a dash when there is none (no lists, no denominator)."""
    return "–" if _missing(value) else f"{100 * float(value):.{digits}f}%"


def number(value: float | None, spec: str = ".4g") -> str:
    return "–" if _missing(value) else format(float(value), spec)


def duration(seconds: float | None) -> str:
    """Seconds as the largest two units (``2 d 3 h``, ``5 min 2 s``)."""
    if _missing(seconds):
        return "–"
    left = round(float(seconds))
    parts = []
    for unit, size in (("d", 86_400), ("h", 3_600), ("min", 60), ("s", 1)):
        if left >= size or (unit == "s" and not parts):
            parts.append(f"{left // size} {unit}")
            left %= size
    return " ".join(parts[:2])
