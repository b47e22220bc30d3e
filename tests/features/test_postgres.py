"""The feature table and both plugins on the real PostgreSQL server."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import func, select

from recsdk import RecSDK
from recsdk.features.feature_store import FeatureStore
from recsdk.storage.models import ItemFeature
from recsdk.storage.store import Store

from .conftest import sdk_rows

pytestmark = pytest.mark.postgres


def test_feature_store_on_postgres(postgres_database):
    store = Store(postgres_database)
    store.upgrade()
    fs = FeatureStore(store)
    texts = ["AB", "C"]

    def encode(pos: list[int]) -> np.ndarray:
        return np.array([[texts[p].count(c) for c in "ABC"] for p in pos], dtype=np.float32)

    first, report = fs.sync("t", "v1", ["x", "y"], texts, encode)
    assert report.computed == 2 and first.tolist() == [[1, 1, 0], [0, 0, 1]]
    texts[1] = "CC"
    second, report = fs.sync("t", "v1", ["x", "y"], texts, encode)
    assert (report.computed, report.reused) == (1, 1)
    assert second.tolist() == [[1, 1, 0], [0, 0, 2]]
    assert fs.delete("t") == 2
    store.close()


def test_plugins_fit_and_restart_on_postgres(postgres_database, minilm):
    config = {"database_url": postgres_database,
              "plugins": {"content": {"text_encoder": "minilm"}, "interest": {},
                          "popularity": {"weight": 0.0}}}
    sdk = RecSDK(config, environ={})
    rows = sdk_rows()
    sdk.upsert_categories(rows["categories"])
    sdk.upsert_items(rows["items"])
    sdk.upsert_users(rows["users"])
    sdk.track_many(rows["events"])
    sdk.fit()
    with sdk.store.engine.connect() as conn:
        stored = conn.execute(select(func.count()).select_from(ItemFeature)
                              .where(ItemFeature.name == "text:minilm")).scalar()
    assert stored == len(rows["items"])
    similar = sdk.similar_items("p1", k=2).item_ids
    profile = sdk.plugins.get("interest").profile("runner").to_dict()
    assert profile["demographics"]["age_band"] == "25-34"
    sdk.close()
    restarted = RecSDK(config, environ={})
    assert restarted.similar_items("p1", k=2).item_ids == similar
    assert restarted.plugins.get("interest").profile("runner").to_dict() == profile
    restarted.close()
