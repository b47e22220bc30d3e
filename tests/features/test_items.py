"""The item feature builder: blocks, the scalar table, state, stored vectors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsdk.catalog import CategoryTree
from recsdk.errors import ConfigurationError, NotTrainedError
from recsdk.features.feature_store import FeatureStore
from recsdk.features.items import ItemActivity, ItemFeatureBuilder
from recsdk.storage.store import Store

from .conftest import CATEGORIES, ITEMS

TREE = CategoryTree.from_frame(CATEGORIES)


def _similar(features, item_id: str, block: str) -> list[str]:
    ids = list(features.item_ids)
    matrix = features.blocks[block]
    row = matrix[ids.index(item_id)]
    sims = (matrix @ row.T)
    sims = sims.toarray().ravel() if hasattr(sims, "toarray") else np.asarray(sims).ravel()
    order = np.lexsort((ids, -sims))
    return [ids[i] for i in order if ids[i] != item_id]


def test_blocks_and_table():
    builder = ItemFeatureBuilder().fit(ITEMS, TREE)
    features = builder.transform(ITEMS, TREE)
    assert set(features.blocks) == {"text", "category", "tags", "price"}
    for matrix in features.blocks.values():
        assert matrix.shape[0] == len(ITEMS)
    assert _similar(features, "s1", "category")[:2] == ["s2", "s3"]
    assert _similar(features, "s1", "tags")[0] == "s2"
    assert _similar(features, "p1", "text")[0] == "p2"  # "smartphone"
    table = features.table
    assert table.loc["s1", "discount"] == pytest.approx(0.2)
    assert table.loc["s2", "discount"] == 0.0
    assert table.loc["p1", "log_price"] == pytest.approx(np.log1p(600.0))
    assert set(table.columns) == {"log_price", "price_z_in_category", "price_bucket",
                                  "discount", "popularity", "freshness_days"}


def test_new_items_get_features_from_the_fitted_vocabularies():
    builder = ItemFeatureBuilder().fit(ITEMS, TREE)
    new = pd.DataFrame({"id": ["n1", "n2"], "title": ["Trail running shoes", None],
                        "description": [None, None], "category_id": ["fashion/shoes", None],
                        "tags": [["running", "brand-new-tag"], None], "price": [85.0, None]})
    features = builder.transform(new, TREE)
    assert features.blocks["text"][0].nnz > 0 and features.blocks["text"][1].nnz == 0
    assert features.blocks["category"][1].nnz == 0 and features.blocks["price"][1].nnz == 0
    assert features.blocks["tags"][0].nnz == 1  # the unseen tag is ignored
    assert np.isnan(features.table.loc["n2", "log_price"])


def test_popularity_and_freshness_come_from_activity(dataset):
    builder = ItemFeatureBuilder().fit(ITEMS, TREE)
    items = ITEMS.assign(created_at=pd.Timestamp("2024-02-01", tz="UTC"))
    activity = ItemActivity.from_dataset(dataset, items["id"].tolist())
    table = builder.transform(items, TREE, activity).table
    assert table.loc["p3", "popularity"] == 2 and table.loc["s3", "popularity"] == 0
    # created a month before the first event; "now" is the newest event (12 days in)
    assert table.loc["s3", "freshness_days"] == pytest.approx(29 + 12)


def test_state_round_trip_and_mismatches():
    builder = ItemFeatureBuilder(price_buckets=4).fit(ITEMS, TREE)
    state = builder.state()
    assert all(v.dtype != object for v in state.values())
    restored = ItemFeatureBuilder(price_buckets=4).load_state(state)
    a, b = builder.transform(ITEMS, TREE), restored.transform(ITEMS, TREE)
    for name in a.blocks:
        assert abs(a.blocks[name] - b.blocks[name]).max() == 0
    with pytest.raises(ConfigurationError, match="blocks"):
        ItemFeatureBuilder(blocks=["text"]).load_state(state)
    with pytest.raises(ConfigurationError, match="'tfidf'"):
        ItemFeatureBuilder(text_encoder="minilm").load_state(state)


def test_bad_configuration_is_named():
    with pytest.raises(ConfigurationError, match="colour"):
        ItemFeatureBuilder(blocks=["text", "colour"]).fit(ITEMS, TREE)
    with pytest.raises(ConfigurationError, match="at least one"):
        ItemFeatureBuilder(blocks=[]).fit(ITEMS, TREE)
    with pytest.raises(ConfigurationError, match="'id' column"):
        ItemFeatureBuilder().fit(ITEMS.drop(columns="id"), TREE)
    with pytest.raises(NotTrainedError):
        ItemFeatureBuilder().transform(ITEMS, TREE)
    with pytest.raises(ConfigurationError, match="image_root '/no/such/dir' is not a folder"):
        ItemFeatureBuilder(blocks=["image"], image_root="/no/such/dir")._validate()


def test_expensive_blocks_are_reused_from_the_store(tmp_path, minilm):
    from PIL import Image

    paths = []
    for n, colour in enumerate([(200, 0, 0), (0, 0, 200)]):
        paths.append(f"{n}.png")
        Image.fromarray(np.full((32, 32, 3), colour, dtype=np.uint8)).save(tmp_path / paths[-1])
    items = ITEMS.head(4).assign(image_url=[paths[0], paths[1], None, "https://x/y.jpg"])
    store = Store(f"sqlite:///{tmp_path / 'f.db'}")
    store.upgrade()
    fs = FeatureStore(store)
    builder = ItemFeatureBuilder(blocks=["text", "image", "category"], text_encoder="minilm",
                                 image_root=str(tmp_path)).fit(items, TREE)
    first = builder.transform(items, TREE, store=fs)
    assert {(r.name, r.computed, r.reused) for r in first.reports} == {
        ("text:minilm", 4, 0), ("image", 4, 0)}
    assert first.problems == {
        "h1": "'https://x/y.jpg' is a remote URL: images are never downloaded"}
    changed = items.copy()
    changed.loc[1, "title"] = "Completely different words"
    second = builder.transform(changed, TREE, store=fs)
    assert {(r.name, r.computed, r.reused) for r in second.reports} == {
        ("text:minilm", 1, 3), ("image", 0, 4)}
    assert np.allclose(second.blocks["text"][0], first.blocks["text"][0], atol=1e-6)
    assert not np.allclose(second.blocks["text"][1], first.blocks["text"][1])
    assert np.allclose(second.blocks["image"], first.blocks["image"])
    store.close()
