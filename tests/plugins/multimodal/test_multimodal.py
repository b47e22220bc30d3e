"""multimodal: cold items ranked by content, fallbacks, determinism, state, errors."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from recsdk_plugins.multimodal import Multimodal
from recsdk_plugins.multimodal.features import AttributeEncoder

from recsdk import RecSDK
from recsdk.catalog import Catalog
from recsdk.config import Settings
from recsdk.data.synthetic import SyntheticShop, generate_shop
from recsdk.dataset import InteractionDataset
from recsdk.errors import ConfigurationError
from recsdk.plugin_manager import discover_plugins
from recsdk.types import CandidateSet, PluginContext, RecommendationRequest, UserHistory

WEIGHTS = {"view": 1.0, "click": 2.0, "add_to_cart": 3.0, "purchase": 4.0}
#: Small and quick: a few epochs of a small mapper on a tiny shop.
FAST = {"text_encoder": "tfidf", "factors": 16, "hidden": 64, "als_iterations": 5,
        "max_epochs": 6, "eval_every": 2, "batch_size": 256, "negatives": 32, "learning_rate": 1e-2,
        "attributes": ["attributes"]}


def _shop() -> SyntheticShop:
    return generate_shop(3_000, seed=1, n_users=60, n_items=80, tree=(2, 2, 2))


def _new_item(items: pd.DataFrame, like: str, new_id: str, **changes: Any) -> dict[str, Any]:
    """A copy of item ``like`` under a new id (the same category, words and tags)."""
    row = items.set_index("id").loc[like].to_dict()
    row.update({"id": new_id, "title": f"New {row['title']}", **changes})
    return row


@pytest.fixture(scope="module")
def shop() -> dict[str, Any]:
    """The shop plus brand-new items nobody touched: copies of an item of the busiest
    leaf category of each of two departments, and one of them without text or image."""
    data = _shop()
    items = data.items.astype({"id": str})
    events = data.events.astype({"user_id": str, "item_id": str})
    leaf_of = dict(zip(items["id"], items["category_id"].astype(str), strict=True))
    busy = events["item_id"].map(leaf_of).value_counts()
    leaf_a = busy.index[0]
    leaf_b = next(c for c in busy.index if c.split("/")[0] != leaf_a.split("/")[0])
    like_a = items["id"][items["category_id"] == leaf_a].iloc[0]
    like_b = items["id"][items["category_id"] == leaf_b].iloc[0]
    extra = [_new_item(items, like_a, "new_a"), _new_item(items, like_b, "new_b"),
             _new_item(items, like_a, "bare", title=None, description=None, image_url=None)]
    catalog_items = pd.concat([items, pd.DataFrame(extra)], ignore_index=True)
    catalog = Catalog.from_frames(catalog_items, data.categories)
    dataset = InteractionDataset.from_frame(events, catalog, WEIGHTS)
    per_leaf = events.assign(leaf=events["item_id"].map(leaf_of))
    counts = per_leaf.groupby(["user_id", "leaf"]).size().unstack(fill_value=0)
    share = counts.div(counts.sum(axis=1), axis=0)  # of each user's events
    fans = {leaf: str(share[leaf].idxmax()) for leaf in (leaf_a, leaf_b)}
    return {"data": data, "catalog": catalog, "dataset": dataset, "fans": fans,
            "leaves": (leaf_a, leaf_b), "like": (like_a, like_b)}


def fitted(dataset: InteractionDataset, seed: int = 3, **params: Any) -> Multimodal:
    plugin = Multimodal.from_config({**FAST, **params}, "multimodal")
    context = PluginContext(settings=Settings(event_weights=WEIGHTS), seed=seed,
                            catalog=dataset.catalog)
    plugin.recsdk_configure(context=context)
    plugin.recsdk_fit(dataset=dataset, context=context)
    return plugin


@pytest.fixture(scope="module")
def plugin(shop: dict[str, Any]) -> Multimodal:
    return fitted(shop["dataset"])


def _scores(plugin: Multimodal, dataset: InteractionDataset, user: str,
            ids: list[str]) -> dict[str, float]:
    codes = dataset.item_codes(ids)
    got = plugin.recsdk_score_users(user_ids=[user], candidates=CandidateSet(ids, codes))[0]
    return dict(zip(ids, got, strict=True))


def test_registered_as_a_builtin_plugin() -> None:
    assert discover_plugins()["multimodal"].target == "recsdk_plugins.multimodal:Multimodal"


def test_brand_new_items_are_scored_and_ranked_by_the_users_taste(shop, plugin) -> None:
    dataset = shop["dataset"]
    assert dataset.item_codes(["new_a"])[0] >= 0  # in the catalogue, never interacted with
    assert dataset.matrix[:, dataset.item_codes(["new_a", "new_b"])].nnz == 0
    leaf_a, leaf_b = shop["leaves"]
    for fan, mine, other in ((shop["fans"][leaf_a], "new_a", "new_b"),
                             (shop["fans"][leaf_b], "new_b", "new_a")):
        scores = _scores(plugin, dataset, fan, [mine, other])
        assert np.isfinite(list(scores.values())).all()
        assert scores[mine] > scores[other], (fan, scores)


def test_items_added_after_training_and_strangers_are_served(shop, plugin) -> None:
    data, leaf_a = shop["data"], shop["leaves"][0]
    later = _new_item(data.items, shop["like"][0], "later_a")
    other = _new_item(data.items, shop["like"][1], "later_b")
    catalog = Catalog.from_frames(pd.concat([shop["catalog"].frame, pd.DataFrame([later, other])],
                                            ignore_index=True), data.categories)
    ids = ["later_a", "later_b", "not_in_catalogue"]
    candidates = CandidateSet(ids, np.full(3, -1))
    history = [str(i) for i in data.items["id"][data.items["category_id"] == leaf_a]]
    request = RecommendationRequest(user_id=None, k=3, catalog=catalog,
                                    history=UserHistory(history[:5], ["purchase"] * 5))
    scores = plugin.recsdk_score(request=request, candidates=candidates)
    assert np.isfinite(scores).all()  # the uncatalogued one gets the no-content vector
    assert scores[0] > scores[1]
    similar = plugin.recsdk_score_similar(item_id="later_a", candidates=candidates,
                                          catalog=catalog)
    assert similar[0] == pytest.approx(1.0) and similar[0] > similar[1]


def test_an_item_without_text_or_image_gets_the_fallback_row(shop, plugin) -> None:
    encoder = plugin.encoder_
    rows = encoder.transform(shop["catalog"].frame.query("id in ['bare', 'new_a']")
                             .set_index("id").loc[["bare", "new_a"]].reset_index(),
                             shop["catalog"].tree)
    assert not rows.present["text"][0] and rows.present["text"][1]
    assert rows.matrix[0, encoder.flag_column("text")] == 1.0
    assert rows.present["category"][0]  # the rest of its content still counts
    fan = shop["fans"][shop["leaves"][0]]
    scores = _scores(plugin, shop["dataset"], fan, ["bare", "new_b"])
    assert np.isfinite(scores["bare"]) and scores["bare"] > scores["new_b"]


def test_image_block_from_local_files_with_a_fallback_for_items_without(shop, tmp_path) -> None:
    image = pytest.importorskip("PIL.Image")
    data = shop["data"]
    items = shop["catalog"].frame.copy()
    colours = {"electronics": (200, 30, 30), "fashion": (30, 30, 200)}
    urls = []
    for n, (item_id, leaf) in enumerate(zip(items["id"], items["category_id"], strict=True)):
        if item_id == "bare" or n % 7 == 0:
            urls.append(None)
            continue
        image.new("RGB", (16, 16), colours.get(str(leaf).split("/")[0], (0, 0, 0))).save(
            tmp_path / f"{item_id}.png")
        urls.append(f"{item_id}.png")
    items["image_url"] = urls
    catalog = Catalog.from_frames(items, data.categories)
    dataset = InteractionDataset.from_frame(
        data.events.astype({"user_id": str, "item_id": str}), catalog, WEIGHTS)
    model = fitted(dataset, image_root=str(tmp_path), max_epochs=2, validation_share=0.0)
    assert "image" in model.encoder_.blocks
    rows = model.encoder_.transform(items.set_index("id").loc[["new_a", "bare"]].reset_index(),
                                    catalog.tree)
    assert rows.present["image"].tolist() == [True, False]
    scores = _scores(model, dataset, shop["fans"][shop["leaves"][0]], ["new_a", "bare"])
    assert np.isfinite(list(scores.values())).all()


def test_same_seed_same_model_other_seed_other_model(shop, plugin) -> None:
    again = fitted(shop["dataset"])
    np.testing.assert_array_equal(again.item_vectors_, plugin.item_vectors_)
    np.testing.assert_array_equal(again.user_vectors_, plugin.user_vectors_)
    other = fitted(shop["dataset"], seed=4)
    assert not np.allclose(other.item_vectors_, plugin.item_vectors_)


def test_training_report_comes_from_pseudo_cold_validation(plugin) -> None:
    report = plugin.report_
    assert report.history and report.best_score is not None and 0 <= report.best_score <= 1
    assert report.epochs == max(report.best_epoch, 1)  # refit for the best epoch count


def test_state_round_trip_through_the_registry(tmp_path: Path) -> None:
    config = {"database_url": f"sqlite:///{tmp_path / 'shop.db'}",
              "pipeline": {"timeout_ms": 10_000, "fallback": ""},
              "plugins": {"multimodal": {**FAST, "attributes": [], "max_epochs": 2}},
              "models": {"inline_max_bytes": 0, "model_refresh_s": 0}}
    with RecSDK(config, environ={}) as sdk:
        data = generate_shop(1_500, seed=2, n_users=30, n_items=40, tree=(2, 2, 2))
        data.write_to(sdk)
        sdk.fit()
        before = sdk.plugins.get("multimodal")
        users = sorted(data.events["user_id"].astype(str).unique())[:3]
        lists = {u: sdk.recommend(u, k=5).item_ids for u in users}
        similar = sdk.similar_items(str(data.items["id"].iloc[0]), k=5).item_ids
        with RecSDK(config, environ={}) as other:
            after = other.plugins.get("multimodal")
            assert after is not before
            np.testing.assert_array_equal(after.item_vectors_, before.item_vectors_)
            for name, value in before.model_.state_dict().items():
                np.testing.assert_array_equal(after.model_.state_dict()[name].numpy(),
                                              value.numpy())
            assert {u: other.recommend(u, k=5).item_ids for u in users} == lists
            assert other.similar_items(str(data.items["id"].iloc[0]), k=5).item_ids == similar


@pytest.mark.parametrize(("params", "name"), [
    ({"hidden": -1}, "hidden"), ({"blocks": {"sound": 1.0}}, "blocks"),
    ({"blocks": {"text": 0.0}}, "blocks"), ({"text_encoder": "bert"}, "text_encoder"),
    ({"validation_share": 0.9}, "validation_share"), ({"factors": 0}, "factors"),
    ({"block_dropout": 1.5}, "block_dropout"), ({"epochs": 3}, "epochs")])
def test_bad_parameters_are_refused_by_name(params: dict[str, Any], name: str) -> None:
    with pytest.raises(ConfigurationError, match=rf"plugins\.multimodal: invalid .*'{name}'"):
        Multimodal.from_config(params, "multimodal")


def test_attributes_are_tokens_and_numbers_are_bucketed() -> None:
    frame = pd.DataFrame({"year": [1950, 1990, 1995, None],
                          "genres": ["Action Comedy", ["Drama"], None, "Comedy"],
                          "attributes": [{"brand": "Nage"}, {"brand": "Naba"}, {}, None]})
    encoder = AttributeEncoder(["year", "genres", "attributes"], buckets=2).fit(frame)
    vocabulary = set(encoder.vocabulary_)
    assert {"genres=Action", "genres=Comedy", "genres=Drama", "attributes=brand=Nage",
            "year#0", "year#1"} <= vocabulary
    assert not any(t.startswith("year=") for t in vocabulary)  # numbers: buckets only
    rows = encoder.transform(frame).toarray()
    assert rows[3].sum() == 1.0  # no year, no attributes: only its genre
    again = AttributeEncoder(["year", "genres", "attributes"], 2).load_state(encoder.state())
    np.testing.assert_array_equal(again.transform(frame).toarray(), rows)


def test_an_unknown_attribute_column_is_named(shop) -> None:
    with pytest.raises(ConfigurationError, match="'colour_code'"):
        fitted(shop["dataset"], attributes=["colour_code"])


def test_missing_torch_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now fails
    plugin = Multimodal.from_config({}, "multimodal")
    with pytest.raises(ConfigurationError, match=r"multimodal.*recsdk\[torch\]"):
        plugin.recsdk_configure(context=PluginContext(settings=Settings(), seed=0))
