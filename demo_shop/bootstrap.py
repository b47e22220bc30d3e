"""Getting a fresh shop ready to serve: data in, models trained (each only if missing).

What ``python -m demo_shop`` does before serving, and what tests call: the schema is
already current (the extension migrates recsdk's at start-up and the app creates the
shop's tables), so this fills an empty shop with the synthetic catalogue (and the
clothing catalogue when a file is configured) and trains when recsdk has no model or
was just given new data.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask
from sqlalchemy import Engine, func, select
from werkzeug.security import generate_password_hash

from demo_shop import db
from demo_shop.clothing import clothing_catalogue
from demo_shop.extensions import current_shop, recsdk_ext
from demo_shop.loading import LoadSummary, load_catalogue, load_synthetic


def prepare(app: Flask, *, events: int = 50_000, seed: int = 42,
            echo: Callable[[str], None] = print) -> list[LoadSummary]:
    """Load what the shop lacks and train if needed; return what was loaded."""
    loaded: list[LoadSummary] = []
    with app.app_context():
        engine = current_shop().engine
        sdk = recsdk_ext.sdk()
        if _count(engine, "synthetic") == 0:
            echo(f"loading the synthetic shop ({events:,} events, seed {seed})...")
            password = generate_password_hash(app.config["DEMO_SHOP_PASSWORD"])
            loaded.append(load_synthetic(sdk, engine, events=events, seed=seed,
                                         password_hash=password))
            echo(loaded[-1].line())
        clothing = app.config["DEMO_SHOP_CLOTHING_CSV"]
        if clothing and _count(engine, "clothing") == 0:
            echo(f"loading the clothing catalogue from {clothing}...")
            loaded.append(load_catalogue(sdk, engine, clothing_catalogue(clothing, seed),
                                         "clothing"))
            echo(loaded[-1].line())
        if not sdk.trained or any(s.events for s in loaded):
            echo("training...")
            report = sdk.fit()
            echo(f"trained run {report.run_id[:12]} on {report.interactions:,} interactions "
                 f"in {report.seconds:.1f} s")
    return loaded


def _count(engine: Engine, source: str) -> int:
    p = db.products
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(p).where(
            p.c.source == source)).scalar_one())
