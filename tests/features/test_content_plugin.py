"""The content plugin through RecSDK: similar items, profiles, cold start, state, errors."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select

from recsdk import RecSDK
from recsdk.errors import ConfigurationError, PluginError
from recsdk.features.content import ContentModel
from recsdk.plugin_manager import discover_plugins
from recsdk.storage.models import ItemFeature
from recsdk.types import RecommendationRequest, UserHistory

from .conftest import sdk_rows

CONTENT_ONLY = {"content": {}, "popularity": {"weight": 0.0}}


@pytest.fixture
def make_sdk(tmp_path) -> Iterator[Any]:
    made: list[RecSDK] = []

    def build(plugins: dict[str, Any] | None = None, fill: bool = True) -> RecSDK:
        sdk = RecSDK({"database_url": f"sqlite:///{tmp_path / 'shop.db'}",
                      "plugins": plugins or CONTENT_ONLY}, environ={})
        made.append(sdk)
        if fill:
            rows = sdk_rows()
            sdk.upsert_categories(rows["categories"])
            sdk.upsert_items(rows["items"])
            sdk.upsert_users(rows["users"])
            sdk.track_many(rows["events"])
        return sdk

    yield build
    for sdk in made:
        sdk.close()


def _leaf(sdk: RecSDK, item_id: str) -> str:
    return sdk.catalog.category_of(item_id)


def test_registered_as_builtin_plugins():
    available = discover_plugins()
    assert available["content"].target == "recsdk_plugins.content:ContentBased"
    assert available["interest"].target == "recsdk_plugins.interest:UserInterest"


def test_similar_items_share_category_tags_and_words(make_sdk):
    sdk = make_sdk()
    sdk.fit()
    result = sdk.similar_items("s1", k=3)
    assert result.item_ids[0] == "s2" and "content" in result.plugins
    assert all(_leaf(sdk, i).startswith("fashion") for i in result.item_ids)
    phones = sdk.similar_items("p1", k=2).item_ids
    assert set(phones) == {"p2", "p3"}


def test_user_profiles_follow_history(make_sdk):
    sdk = make_sdk()
    sdk.fit()
    runner = sdk.recommend("runner", k=4).item_ids  # purchases are filtered out
    assert all(_leaf(sdk, i).startswith("fashion") for i in runner[:2])
    assert not {"p1", "p2", "p3"} & set(runner)  # phones: nothing in common
    techie = sdk.recommend("techie", k=4)
    assert all(_leaf(sdk, i).startswith("electronics") for i in techie.item_ids)


def test_batch_scores_equal_request_scores(make_sdk):
    sdk = make_sdk()
    sdk.fit()
    plugin = sdk.plugins.get("content")
    candidates = sdk._state.all_candidates
    batch = plugin.recsdk_score_users(["runner", "nobody"], candidates)
    history = sdk.history("runner")
    request = RecommendationRequest(user_id="runner", k=5, history=history,
                                    catalog=sdk.catalog)
    single = plugin.recsdk_score(request, candidates)
    assert np.allclose(batch[0], single)
    assert np.isnan(batch[1]).all()  # unknown user: cannot score


def test_cold_start_user_and_brand_new_item(make_sdk):
    sdk = make_sdk()
    sdk.fit()
    sdk.track({"user_id": "newcomer", "item_id": "a1", "type": "view"})  # unseen at fit
    result = sdk.recommend("newcomer", k=3)
    assert "content" in result.plugins
    assert all(_leaf(sdk, i) == "electronics/audio" for i in result.item_ids)
    sdk.upsert_items([{"id": "s9", "title": "Trail running shoes for mountains",
                       "category_id": "fashion/shoes", "tags": ["running"], "price": 95.0}])
    plugin = sdk.plugins.get("content")
    assert "s9" not in plugin.model_.item_index  # nobody touched it and it came after fit
    similar = sdk.similar_items("s9", k=2).item_ids
    assert similar[0] in {"s1", "s2"}
    request = RecommendationRequest(user_id="runner", k=5, history=sdk.history("runner"),
                                    catalog=sdk.catalog)
    candidates = sdk._state.all_candidates
    scores = plugin.recsdk_score(request, candidates)
    position = list(candidates.ids).index("s9")
    assert candidates.codes[position] == -1 and np.isfinite(scores[position])
    assert scores[position] > np.nanmedian(scores)


def test_items_without_interactions_are_scored(make_sdk):
    sdk = make_sdk()
    sdk.fit()
    plugin = sdk.plugins.get("content")
    assert "s3" in plugin.model_.item_index  # in the catalogue, no event
    assert "s3" in sdk.similar_items("s1", k=3).item_ids


def test_state_survives_a_restart(make_sdk):
    sdk = make_sdk({**CONTENT_ONLY, "content": {"popularity_weight": 0.1}})
    sdk.fit()
    before = sdk.similar_items("a2", k=5)
    restarted = make_sdk({**CONTENT_ONLY, "content": {"popularity_weight": 0.1}}, fill=False)
    assert restarted.trained
    after = restarted.similar_items("a2", k=5)
    assert after.item_ids == before.item_ids
    assert np.allclose([i.score for i in after.items], [i.score for i in before.items])
    batch = restarted.plugins.get("content").recsdk_score_users(
        ["techie"], restarted._state.all_candidates)
    assert np.isfinite(batch).any()


def test_saved_state_must_match_parameters_and_vocabulary(make_sdk):
    sdk = make_sdk()
    sdk.fit()
    state = sdk.plugins.get("content").recsdk_save_state()
    builder = sdk.plugins.get("content")._builder()
    with pytest.raises(ConfigurationError, match="another training run"):
        ContentModel.from_state(state, builder, sdk.plugins.get("content").model_.item_ids[1:])
    # a restart with other blocks keeps serving: the plugin abstains until retrained
    restarted = make_sdk({**CONTENT_ONLY, "content": {"blocks": {"tags": 1.0}}}, fill=False)
    assert not hasattr(restarted.plugins.get("content"), "model_")
    assert restarted.recommend("techie", k=3).plugins == ["popularity"]


def test_minilm_vectors_are_kept_and_recomputed_only_for_changed_items(make_sdk, minilm):
    sdk = make_sdk({**CONTENT_ONLY, "content": {"text_encoder": "minilm",
                                                "blocks": {"text": 1.0, "category": 0.5}}})
    sdk.fit()
    table = ItemFeature.__table__

    def stored() -> dict[str, Any]:
        with sdk.store.engine.connect() as conn:
            rows = conn.execute(select(table.c.item_id, table.c.updated_at)
                                .where(table.c.name == "text:minilm")).all()
        return dict(rows)

    first = stored()
    assert len(first) == 12
    sdk.upsert_items([{"id": "h2", "title": "Panama hat"}])
    sdk.fit()
    second = stored()
    assert [i for i in first if second[i] != first[i]] == ["h2"]
    assert sdk.similar_items("h1", k=1).item_ids


@pytest.mark.parametrize(("params", "message"), [
    ({"blocks": {"colour": 1.0}}, "colour"),
    ({"blocks": {"text": 0.0}}, "positive weight"),
    ({"blocks": {"text": -1.0}}, "blocks"),
    ({"text_encoder": "bert"}, "text_encoder"),
    ({"price_buckets": 1}, "price_buckets"),
    ({"tfidf_features": 10}, "tfidf_features"),
])
def test_bad_parameters_are_named(make_sdk, params, message):
    with pytest.raises(ConfigurationError, match=message):
        make_sdk({**CONTENT_ONLY, "content": params}, fill=False)


def test_fit_without_a_catalogue_says_so(make_sdk):
    sdk = make_sdk(fill=False)
    sdk.track({"user_id": "u", "item_id": "x", "type": "view"})
    with pytest.raises(PluginError, match="catalogue"):
        sdk.fit()


def test_abstains_without_history(make_sdk):
    sdk = make_sdk()
    sdk.fit()
    plugin = sdk.plugins.get("content")
    request = RecommendationRequest(user_id="ghost", k=3, history=UserHistory(),
                                    catalog=sdk.catalog)
    assert plugin.recsdk_score(request, sdk._state.all_candidates) is None
    request.history = UserHistory(["unknown-item"], ["view"])
    assert plugin.recsdk_score(request, sdk._state.all_candidates) is None
