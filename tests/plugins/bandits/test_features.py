"""The bandits' context: category path match, price, popularity, upstream, recency."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from recsdk_plugins.bandits import features
from recsdk_plugins.bandits.linucb import LinUCBBandit

from recsdk.catalog import Catalog
from recsdk.config import load_settings
from recsdk.types import PluginContext, RecommendationRequest, UserHistory


def catalog() -> Catalog:
    categories = pd.DataFrame({"id": ["all", "shoes", "boots", "hats"],
                               "name": ["All", "Shoes", "Boots", "Hats"],
                               "parent_id": [None, "all", "shoes", "all"]})
    items = pd.DataFrame({"id": ["b1", "h1", "x1"], "category_id": ["boots", "hats", None],
                          "price": [100.0, 10.0, np.nan]})
    return Catalog.from_frames(items, categories, version="1")


def test_recency_decays_with_the_events_since() -> None:
    got = features.recency(["a", "b", "a", "c"], ["a", "b", "c", "d"])
    np.testing.assert_allclose(got, [0.8, 0.8 ** 2, 1.0, 0.0])


def test_contexts_read_the_interest_profile_catalogue_and_ranking() -> None:
    plugin = LinUCBBandit(backend="memory", sync_s=0.0)
    plugin.recsdk_configure(PluginContext(settings=load_settings({}, environ={})))
    profile = {"category_affinity": {"all": 4.0, "shoes": 3.0, "boots": 2.0, "hats": 1.0},
               "purchase": {"mean_order_value": 100.0}}
    request = RecommendationRequest(
        user_id="u", k=2, catalog=catalog(), features={"interest": profile},
        history=UserHistory(["h1", "b1"], ["view", "click"]))

    X = plugin.contexts(request, ["b1", "h1", "x1"], np.array([3.0, 2.0, 1.0]))

    col = {name: X[:, i] for i, name in enumerate(features.FEATURES)}
    assert X.shape == (3, features.DIM)
    np.testing.assert_allclose(col["bias"], 1.0)
    np.testing.assert_allclose(col["leaf"], [0.5, 0.25, 0.0])     # boots 2/4, hats 1/4
    np.testing.assert_allclose(col["parent"], [0.75, 1.0, 0.0])   # shoes 3/4, all 4/4
    np.testing.assert_allclose(col["root"], [1.0, 1.0, 0.0])
    assert col["price"][0] > 0 > col["price"][1] and col["price"][2] == 0.0
    assert col["price_match"][0] == pytest.approx(1.0) and col["price_match"][2] == 0.0
    np.testing.assert_allclose(col["upstream_score"], [1.0, 0.5, 0.0])
    np.testing.assert_allclose(col["upstream_rank"], 1 / np.log2([2, 3, 4]))
    np.testing.assert_allclose(col["known_user"], 1.0)
    np.testing.assert_allclose(col["recent"], [1.0, 0.8, 0.0])
    np.testing.assert_allclose(col["popularity"], 0.0)  # not fitted: no popularity


def test_a_user_without_profile_gets_zero_affinities() -> None:
    plugin = LinUCBBandit(backend="memory", sync_s=0.0)
    plugin.recsdk_configure(PluginContext(settings=load_settings({}, environ={})))
    request = RecommendationRequest(user_id=None, k=2, catalog=catalog())
    X = plugin.contexts(request, ["b1", "h1"], np.array([1.0, 1.0]))
    for name in ("leaf", "parent", "root", "price_match", "known_user"):
        np.testing.assert_allclose(X[:, features.FEATURES.index(name)], 0.0)
    np.testing.assert_allclose(X[:, features.FEATURES.index("upstream_score")], 1.0)
