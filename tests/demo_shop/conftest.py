"""Fixtures of the demo shop's tests: one small trained shop, copied for each test.

The template is made once per session by the shop's own command
(``python -m demo_shop --setup-only``, run in-process): recsdk's schema, the shop's
tables, a synthetic shop of 3,000 events (300 products, 75 accounts) and a trained
run. Each test gets a copy of that SQLite file and its own app on it, with the
quick start's settings (``config/demo.toml``, experiment included), on the CPU and
with a generous plugin budget so that a busy machine does not degrade the answers.
"""

from __future__ import annotations

import html as markup
import os
import re
import shutil
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient

from demo_shop import close_shop, create_app
from demo_shop.__main__ import main
from recsdk.api.capture import current_capture
from recsdk.capture.tokens import Visitor

DEMO_TOML = Path(__file__).resolve().parents[2] / "config" / "demo.toml"
EVENTS = 3_000
SEED = 7
PASSWORD = "demo"


def settings_text(database_url: str, artifacts: Path) -> str:
    """config/demo.toml with the test's database, the CPU, a patient pipeline and one
    artifact folder for every copy."""
    text = DEMO_TOML.read_text(encoding="utf-8")
    text = re.sub(r'^database_url = .*$', f'database_url = "{database_url}"\ndevice = "cpu"',
                  text, count=1, flags=re.M)
    text = text.replace("[pipeline]\n", "[pipeline]\ntimeout_ms = 10000\n", 1)
    if "\n[models]\n" in text:
        return text.replace("\n[models]\n", f'\n[models]\nartifact_dir = "{artifacts}"\n', 1)
    return f'{text}\n[models]\nartifact_dir = "{artifacts}"\n'


@pytest.fixture(scope="session")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """The trained shop's database file, its artifact folder and the setup's output."""
    folder = tmp_path_factory.mktemp("demo_shop")
    db, artifacts = folder / "template.db", folder / "artifacts"
    config = folder / "recsdk.toml"
    config.write_text(settings_text(f"sqlite:///{db}", artifacts), encoding="utf-8")
    env: dict[str, str | None] = {n: None for n in os.environ if n.startswith("RECSDK_")}
    env.update(RECSDK_CONFIG=str(config), DEMO_SHOP_SECRET_KEY="test")
    done = CliRunner().invoke(main, ["--setup-only", "--events", str(EVENTS), "--seed",
                                     str(SEED)], env=env, catch_exceptions=False)
    assert done.exit_code == 0, done.output
    return db, artifacts, done.output


@pytest.fixture
def make_app(template: tuple[Path, Path, str], tmp_path: Path
             ) -> Iterator[Callable[..., Flask]]:
    """Apps on copies of the template (each its own copy); all closed afterwards."""
    built: list[Flask] = []

    def build(**config: Any) -> Flask:
        db, artifacts, _ = template
        path = tmp_path / f"shop{len(built)}.db"
        shutil.copyfile(db, path)
        settings = tomllib.loads(settings_text(f"sqlite:///{path}", artifacts))
        app = create_app({"RECSDK_CONFIG": settings, "RECSDK_MIGRATE": False,
                          "RECSDK_CLOSE_AT_EXIT": False, "SECRET_KEY": "test",
                          "TESTING": True, **config}, environ={})
        built.append(app)
        return app

    yield build
    for app in built:
        close_shop(app)


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    return make_app()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture(scope="session")
def stocked(template: tuple[Path, Path, str]) -> list[str]:
    """Ids of products in stock with at least five units in the template, in order."""
    from sqlalchemy import create_engine, select

    from demo_shop import db

    engine = create_engine(f"sqlite:///{template[0]}")
    try:
        with engine.connect() as conn:
            return list(conn.execute(select(db.products.c.id).where(
                db.products.c.stock >= 5, db.products.c.active.is_(True))
                .order_by(db.products.c.id)).scalars())
    finally:
        engine.dispose()


def csrf(client: FlaskClient, path: str = "/login") -> str:
    """The form token of the client's session (from any page with a form)."""
    page = client.get(path)
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found, page.text[:500]
    return found.group(1)


def login(client: FlaskClient, account: str = "u01", password: str = PASSWORD,
          next_path: str = "") -> Any:
    return client.post("/login", data={"account": account, "password": password,
                                       "next": next_path, "csrf_token": csrf(client)})


def add_to_cart(client: FlaskClient, item_id: str, quantity: int = 1) -> Any:
    return client.post("/cart/add", data={"item_id": item_id, "quantity": str(quantity),
                                          "csrf_token": csrf(client)})


def widget(html: str, key: str) -> dict[str, Any] | None:
    """A widget's root attributes, its items' ids and positions, the hrefs of its cards
    and the product each leads to, through the logging redirect or not (None: absent)."""
    found = re.search(rf'<section class="widget" id="widget-{key}" ([^>]*)>(.*?)</section>',
                      html, flags=re.S)
    if found is None:
        return None
    attrs = {k: markup.unescape(v)
             for k, v in re.findall(r'([\w-]+)="([^"]*)"', found.group(1))}
    items = re.findall(r'data-recsdk-item-id="([^"]+)" data-recsdk-position="(\d+)"',
                       found.group(2))
    links = [markup.unescape(h) for h in re.findall(r'class="card" href="([^"]+)"',
                                                     found.group(2))]
    return {"attrs": attrs, "items": [(i, int(p)) for i, p in items], "links": links,
            "cards": [urlsplit(target(h)).path.removeprefix("/p/") for h in links]}


def target(href: str) -> str:
    """Where a card's link leads: the logging redirect's ``to``, or the href itself."""
    parts = urlsplit(href)
    if parts.path == "/api/v1/r":
        return parse_qs(parts.query)["to"][0]
    return href


def visitor_of(app: Flask, client: FlaskClient) -> str:
    """The anonymous visitor id the client's visitor cookie proves (a signed token)."""
    cookie = client.get_cookie("recsdk_visitor")
    assert cookie is not None
    with app.app_context():
        proven = current_capture().tokens.read_visitor(cookie.value)
    assert proven.session_id is not None
    return proven.session_id


def visitor_cookie(app: Flask, visitor_id: str) -> str:
    """The visitor cookie's value for the anonymous visitor ``visitor_id``."""
    with app.app_context():
        return current_capture().tokens.visitor_token(Visitor(session_id=visitor_id))
