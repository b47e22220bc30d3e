"""Getting a shop ready: loading is idempotent, training happens only when needed, and
the clothing reviews file becomes a second, sellable catalogue (a tiny generated file
here: the tests never read the real one)."""

from __future__ import annotations

import csv
import tomllib
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import func, select

from demo_shop import db
from demo_shop.bootstrap import prepare
from demo_shop.clothing import ROOT_ID, clothing_catalogue
from demo_shop.extensions import current_shop, recsdk_ext
from recsdk.data.loaders import CLOTHING_COLUMNS
from recsdk.errors import ValidationFailed

REVIEWS = [  # Clothing ID, Age, Title, Review Text, Rating, Recommended, Feedback, levels
    ("1077", "60", "Some major design flaws", "Runs small", "3", "0", "0",
     "General", "Dresses", "Dresses"),
    ("1077", "50", "Lovely", "", "5", "1", "2", "General", "Dresses", "Dresses"),
    ("1049", "33", "Perfect pants", "Fits well", "5", "1", "0",
     "General Petite", "Bottoms", "Pants"),
    ("847", "47", "Flattering shirt", "Soft", "4", "1", "6", "General", "Tops", "Blouses"),
    ("767", "33", "", "Silky", "4", "1", "0", "Initmates", "Intimate", "Intimates"),
]


def write_reviews(path: Path, rows: list[tuple[str, ...]] = REVIEWS,
                  header: tuple[str, ...] = CLOTHING_COLUMNS) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def products(app: Flask, source: str) -> int:
    with app.app_context(), current_shop().engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(db.products).where(
            db.products.c.source == source)).scalar_one())


def test_preparing_a_ready_shop_changes_nothing(app: Flask) -> None:
    sdk = recsdk_ext.sdk(app)
    run, events = sdk.model_run, sdk.store.count_events()
    said: list[str] = []
    assert prepare(app, events=3_000, seed=7, echo=said.append) == []
    assert said == [] and sdk.model_run == run and sdk.store.count_events() == events


def test_the_clothing_catalogue_joins_the_shop_priced_and_stocked(make_app,
                                                                  tmp_path: Path) -> None:
    reviews = write_reviews(tmp_path / "reviews.csv")
    app = make_app(DEMO_SHOP_CLOTHING_CSV=str(reviews))
    sdk = recsdk_ext.sdk(app)
    run, events = sdk.model_run, sdk.store.count_events()
    said: list[str] = []
    (summary,) = prepare(app, seed=7, echo=said.append)
    assert summary.line() == "clothing: 12 categories, 4 products, 0 accounts, 5 events"
    assert said[-1].startswith("trained run ") and sdk.model_run != run  # new data: retrained
    assert sdk.store.count_events() == events + 5
    with app.app_context():
        catalogue = current_shop().catalogue
        dress = catalogue.product("1077")
        tree = catalogue.tree()
    assert dress.title == "Dresses · Lovely" and dress.source == "clothing"
    assert dress.price > 0 and dress.stock >= 0
    assert [c.id for c in tree.path(dress.category_id)] == [
        ROOT_ID, "general", "general/dresses", "general/dresses/dresses"]
    assert products(app, "clothing") == 4
    client = app.test_client()
    assert client.get(f"/c/{ROOT_ID}").status_code == 200
    assert "Dresses · Lovely" in client.get("/p/1077").text
    assert client.get("/img/1077.svg").status_code == 200
    assert prepare(app, seed=7, echo=said.append) == []  # already there


def test_clothing_prices_are_drawn_from_the_seed(tmp_path: Path) -> None:
    path = write_reviews(tmp_path / "reviews.csv")
    first, again, other = (clothing_catalogue(path, seed).items for seed in (3, 3, 4))
    assert first[["id", "price", "original_price", "stock"]].equals(
        again[["id", "price", "original_price", "stock"]])
    assert not first["price"].equals(other["price"])


def test_a_missing_or_foreign_clothing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nope\.csv does not exist"):
        clothing_catalogue(tmp_path / "nope.csv", seed=1)
    foreign = write_reviews(tmp_path / "other.csv", [("1", "2")], ("user", "item"))
    with pytest.raises(ValidationFailed, match="not the clothing reviews file"):
        clothing_catalogue(foreign, seed=1)


def test_a_database_with_events_does_not_get_them_twice(tmp_path: Path) -> None:
    """An older quick start's database (``recsdk demo-data``: recsdk's tables and
    events, no shop tables): the shop adds its tables' rows, not the events again."""
    from demo_shop import close_shop, create_app
    from recsdk.data.synthetic import generate_shop
    from tests.demo_shop.conftest import settings_text

    url = f"sqlite:///{tmp_path / 'old.db'}"
    settings = tomllib.loads(settings_text(url, tmp_path / "artifacts"))
    config = {"RECSDK_CONFIG": settings, "RECSDK_CLOSE_AT_EXIT": False,
              "SECRET_KEY": "test"}
    app = create_app(config, environ={})
    try:
        generate_shop(1_000, seed=1).write_to(recsdk_ext.sdk(app))
        said: list[str] = []
        (summary,) = prepare(app, events=1_000, seed=1, echo=said.append)
        assert summary.events == 0 and "already held 1,000 events" in summary.note
        assert recsdk_ext.sdk(app).store.count_events() == 1_000
        assert products(app, "synthetic") == 300 and summary.accounts == 25
        assert said[-1].startswith("trained run ")  # no model yet: trained
    finally:
        close_shop(app)
