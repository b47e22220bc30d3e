"""The offline loop: fitting through hooks, batch and per-user scoring, top-k selection."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import pytest
from marshmallow import RAISE, Schema, fields

from recsdk import Plugin, hookimpl
from recsdk.dataset import InteractionDataset
from recsdk.errors import ConfigurationError, PluginError
from recsdk.evaluation.offline import (
    FittedPlugin,
    PluginSpec,
    catalog_from_items,
    implicit_dataset,
    scoring_plugins,
    top_k_rows,
)
from recsdk.evaluation.sampling import sample_candidates
from recsdk.types import CandidateSet, PluginContext, RecommendationRequest


class CountParams(Schema):
    class Meta:
        unknown = RAISE

    offset = fields.Float(load_default=0.0)


class PerUserCounts(Plugin):
    """Item counts via ``recsdk_score`` only, recording the histories it is given."""

    Params = CountParams

    @hookimpl
    def recsdk_configure(self, context: PluginContext) -> None:
        self.seed_ = context.seed

    @hookimpl
    def recsdk_fit(self, dataset: InteractionDataset) -> None:
        self.counts_ = np.asarray(dataset.matrix.sum(axis=0)).ravel()
        self.histories_: dict[str, list[str]] = {}

    @hookimpl
    def recsdk_score(self, request: RecommendationRequest,
                     candidates: CandidateSet) -> np.ndarray | None:
        self.histories_[request.user_id] = list(request.history.item_ids)
        if request.user_id == "abstain":
            return None
        return self.counts_[candidates.codes] + self.params["offset"]


class BatchCounts(PerUserCounts):
    """The same scores through ``recsdk_score_users``."""

    @hookimpl
    def recsdk_score_users(self, user_ids: list[str], candidates: CandidateSet) -> np.ndarray:
        row = self.counts_[candidates.codes] + self.params["offset"]
        return np.tile(row, (len(user_ids), 1))


class WrongShape(PerUserCounts):
    @hookimpl
    def recsdk_score_users(self, user_ids: list[str], candidates: CandidateSet) -> np.ndarray:
        return np.zeros((len(user_ids), 1))


class NaNScores(PerUserCounts):
    """Cannot score odd item codes."""

    @hookimpl
    def recsdk_score_users(self, user_ids: list[str], candidates: CandidateSet) -> np.ndarray:
        row = self.counts_[candidates.codes].astype(float)
        row[candidates.codes % 2 == 1] = np.nan
        return np.tile(row, (len(user_ids), 1))


EXTRA: Mapping[str, type] = {"per_user": PerUserCounts, "batch": BatchCounts,
                             "wrong_shape": WrongShape, "nan_scores": NaNScores}


def fitted(plugin: str, frame: pd.DataFrame, **params: object) -> FittedPlugin:
    return FittedPlugin(PluginSpec(plugin, plugin, params), implicit_dataset(frame),
                        seed=11, extra_plugins=EXTRA)


def brute_force_top_k(scores: np.ndarray, k: int) -> list[list[int]]:
    """Stable full sort: best score first, equal scores by column."""
    out = []
    for row in scores:
        order = sorted(range(len(row)), key=lambda c: (-row[c], c))
        out.append([c for c in order if row[c] > -np.inf][:k])
    return out


def test_top_k_rows_matches_a_full_sort_with_many_ties():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 4, size=(50, 30)).astype(float)
    scores[rng.random(scores.shape) < 0.3] = -np.inf
    cols, values = top_k_rows(scores, 7)
    expected = brute_force_top_k(scores, 7)
    for row, want in enumerate(expected):
        got = cols[row][cols[row] >= 0].tolist()
        assert got == want
        assert np.isnan(values[row][len(want):]).all()
        assert values[row][: len(want)].tolist() == scores[row, want].tolist()


def test_top_k_rows_of_an_empty_batch():
    cols, values = top_k_rows(np.empty((0, 5)), 3)
    assert cols.shape == (0, 3) and values.shape == (0, 3)


def test_implicit_dataset_weighs_every_row_one(interactions):
    dataset = implicit_dataset(interactions)
    assert set(dataset.interactions["weight"]) == {1.0}
    assert dataset.matrix.sum() == len(interactions)


def test_popularity_top_k_filters_training_items_and_follows_counts(interactions):
    with fitted("popularity", interactions) as plugin:
        top = plugin.top_k(sorted(interactions["user"].unique()), 5)
    recs = top.to_frame()
    trained = set(map(tuple, interactions[["user", "item"]].to_numpy()))
    assert not trained & set(map(tuple, recs[["user", "item"]].to_numpy()))
    counts = interactions.groupby("item")["user"].nunique()
    for user, group in recs.groupby("user"):
        seen = set(interactions.loc[interactions["user"] == user, "item"])
        unseen = counts[~counts.index.isin(seen)]
        expected = sorted(unseen.index, key=lambda i: (-unseen[i], i))[:5]
        assert group.sort_values("rank")["item"].tolist() == expected
        assert group["rank"].tolist() == [1, 2, 3, 4, 5]


def test_batch_and_per_user_paths_give_the_same_lists(interactions):
    users = sorted(interactions["user"].unique())
    with fitted("batch", interactions) as batch, fitted("per_user", interactions) as single:
        a, b = batch.top_k(users, 6), single.top_k(users, 6)
    np.testing.assert_array_equal(a.codes, b.codes)
    np.testing.assert_allclose(a.scores, b.scores)


def test_per_user_path_passes_the_training_history_and_context(interactions):
    with fitted("per_user", interactions, offset=1.0) as plugin:
        plugin.top_k(["u0", "u1"], 3)
        instance = plugin.manager.get("per_user")
    assert instance.seed_ == 11
    assert instance.params == {"offset": 1.0}
    expected = sorted(interactions.loc[interactions["user"] == "u0", "item"])
    assert sorted(instance.histories_["u0"]) == expected


def test_an_abstaining_or_unknown_user_gets_what_the_plugin_can_give(interactions):
    with fitted("per_user", interactions) as plugin:
        top = plugin.top_k(["abstain", "newcomer"], 3)
    assert (top.codes[0] == -1).all()  # abstained: nothing to recommend
    assert (top.codes[1] >= 0).all()  # unknown user: scored, nothing filtered


def test_nan_scored_items_are_never_recommended(interactions):
    with fitted("nan_scores", interactions) as plugin:
        top = plugin.top_k(["u0", "u1"], 40)
    listed = top.codes[top.codes >= 0]
    assert len(listed) and (listed % 2 == 0).all()


def test_batches_of_users_give_the_same_lists(interactions, monkeypatch):
    import recsdk.evaluation.offline as offline

    users = sorted(interactions["user"].unique())
    with fitted("popularity", interactions) as plugin:
        whole = plugin.top_k(users, 4)
        monkeypatch.setattr(offline, "BATCH_CELLS", 64)  # two users per batch
        batched = plugin.top_k(users, 4, progress=True)
    np.testing.assert_array_equal(whole.codes, batched.codes)


def test_a_plugin_that_does_not_score_is_refused(interactions):
    with pytest.raises(PluginError, match="does not score users"):
        fitted("filters", interactions)


def test_unknown_plugins_and_bad_parameters_are_configuration_errors(interactions):
    with pytest.raises(ConfigurationError, match="unknown plugin 'nope'"):
        fitted("nope", interactions)
    with pytest.raises(ConfigurationError, match=r"invalid parameters.*count"):
        fitted("popularity", interactions, count="sometimes")


def test_a_wrong_score_shape_is_a_plugin_error(interactions):
    with fitted("wrong_shape", interactions) as plugin, \
            pytest.raises(PluginError, match=r"returned shape \(1, 1\)"):
        plugin.top_k(["u0"], 3)


def test_scoring_plugins_lists_the_ones_with_a_scoring_hook(monkeypatch):
    import recsdk.evaluation.offline as offline
    from recsdk.plugin_manager import AvailablePlugin, discover_plugins

    def missing_dependency() -> type:
        raise ImportError("No module named 'torch'")

    installed = {name: entry for name, entry in discover_plugins().items()
                 if name in ("popularity", "filters")}  # not every plugin: some load slowly
    installed["needs_torch"] = AvailablePlugin("needs_torch", "x:Y", None, None,
                                               missing_dependency)
    monkeypatch.setattr(offline, "discover_plugins", lambda: installed)
    names, broken = scoring_plugins(EXTRA)
    assert names == ["batch", "nan_scores", "per_user", "popularity", "wrong_shape"]
    assert broken == {"needs_torch": "ImportError: No module named 'torch'"}


def test_sampled_candidates_hold_the_test_items_and_fresh_negatives(interactions):
    dataset = implicit_dataset(interactions[interactions["user"] != "u1"])
    truth = interactions[interactions["user"] == "u1"]
    allowed, drawn = sample_candidates(dataset, truth, 5, seed=4)
    relevant = set(dataset.item_codes(truth["item"]))
    codes = set(allowed["u1"].tolist())
    assert relevant <= codes
    assert len(codes - relevant) == drawn["u1"] == 5
    again, _ = sample_candidates(dataset, truth, 5, seed=4)
    assert again["u1"].tolist() == allowed["u1"].tolist()
    with fitted("popularity", interactions) as plugin:
        top = plugin.top_k(["u1"], 10, filter_seen=False, allowed=allowed)
    assert set(top.codes[0][top.codes[0] >= 0].tolist()) <= codes
    with pytest.raises(ValueError, match="at least 1"):
        sample_candidates(dataset, truth, 0, seed=4)


def test_catalog_from_items_gives_each_item_its_first_category():
    items = pd.DataFrame({"item": ["a", "a", "b"], "category": ["x", "y", "y"],
                          "title": ["Apple", "Apple", "Banana"]})
    catalog = catalog_from_items(items)
    assert catalog.category_of("a") == "x" and catalog.category_of("b") == "y"
    assert catalog.frame["title"].tolist() == ["Apple", "Banana"]
    assert sorted(catalog.tree.parents) == ["x", "y"]
