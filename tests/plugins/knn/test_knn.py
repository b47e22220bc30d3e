"""item_knn and user_knn against dense numpy computations of the documented formulas."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from recsdk_plugins.knn import ItemKNN, UserKNN
from recsdk_plugins.knn.base import KNNPlugin

from recsdk import RecSDK
from recsdk.config import PluginSettings, Settings
from recsdk.dataset import InteractionDataset
from recsdk.errors import ConfigurationError
from recsdk.types import CandidateSet, PluginContext, RecommendationRequest, UserHistory

WEIGHTS = {"view": 1.0, "purchase": 3.0}
DAY = 86400.0
#: users x items: u0..u5, i0..i5 (a purchase where the cell is 3)
CELLS = np.array([
    [1, 1, 0, 0, 3, 0],
    [1, 3, 1, 0, 0, 0],
    [0, 1, 1, 1, 0, 0],
    [3, 0, 0, 1, 1, 0],
    [1, 1, 1, 0, 0, 1],
    [0, 0, 1, 1, 1, 0],
], dtype=np.float64)


def events(cells: np.ndarray = CELLS) -> pd.DataFrame:
    users, items = np.nonzero(cells)
    return pd.DataFrame({
        "user_id": [f"u{u}" for u in users], "item_id": [f"i{i}" for i in items],
        "type": np.where(cells[users, items] == 3, "purchase", "view"),
        "timestamp": np.arange(len(users), dtype=np.float64)})


def context(name: str) -> PluginContext:
    settings = PluginSettings(name, name)
    return PluginContext(settings=Settings(event_weights=WEIGHTS, plugins=(settings,)))


def fitted(cls: type[KNNPlugin], frame: pd.DataFrame | None = None,
           **params: Any) -> tuple[KNNPlugin, InteractionDataset]:
    dataset = InteractionDataset.from_frame(events() if frame is None else frame,
                                            event_weights=WEIGHTS)
    plugin = cls.from_config(params, name=cls.default_name)
    plugin.recsdk_configure(context=context(cls.default_name))
    plugin.recsdk_fit(dataset=dataset, context=context(cls.default_name))
    return plugin, dataset


def everything(dataset: InteractionDataset) -> CandidateSet:
    return CandidateSet(np.asarray(dataset.item_ids), np.arange(dataset.n_items))


def ordered(dataset: InteractionDataset, matrix: np.ndarray) -> np.ndarray:
    """CELLS reindexed to the dataset's codes (rows: users, columns: items)."""
    users = [int(u[1:]) for u in dataset.user_ids]
    items = [int(i[1:]) for i in dataset.item_ids]
    return matrix[np.ix_(users, items)]


# ---- dense references ------------------------------------------------------------------


def dense_weighting(docs: np.ndarray, kind: str, k1: float = 1.2, b: float = 0.75
                    ) -> np.ndarray:
    if kind == "none":
        return docs
    lengths = docs.sum(axis=1)
    nonempty = lengths > 0
    df = (docs > 0).sum(axis=0)
    idf = np.where(df > 0, np.log(nonempty.sum() / np.maximum(df, 1)), 0.0)
    if kind == "tfidf":
        return docs * idf
    norm = 1 - b + b * lengths / lengths[nonempty].mean()
    tf = np.where(docs > 0, docs * (k1 + 1) / (docs + k1 * norm[:, None]), 0.0)
    return tf * idf


def dense_similarity(vectors: np.ndarray, kind: str, alpha: float, shrink: float
                     ) -> np.ndarray:
    """sim[q, v] for query q and neighbour v, computed pair by pair; 0 on the diagonal."""
    n = len(vectors)
    sim = np.zeros((n, n))
    for q in range(n):
        for v in range(n):
            if q == v:
                continue
            dot = vectors[q] @ vectors[v]
            nq, nv = vectors[q] @ vectors[q], vectors[v] @ vectors[v]
            if kind == "cosine":
                denom = np.sqrt(nq) * np.sqrt(nv)
            elif kind == "asymmetric_cosine":
                denom = nq ** alpha * nv ** (1 - alpha)
            else:
                denom = nq + nv - dot
            denom += shrink
            sim[q, v] = dot / denom if denom > 0 else 0.0
    return sim


def keep_top(sim: np.ndarray, k: int) -> np.ndarray:
    """Each row's k largest positive entries (ties: lower index first)."""
    out = np.zeros_like(sim)
    for q, row in enumerate(sim):
        order = sorted(range(len(row)), key=lambda v: (-row[v], v))[:k]
        for v in order:
            if row[v] > 0:
                out[q, v] = row[v]
    return out


#: Plain cosine, whatever the tuned defaults are.
PLAIN = {"similarity": "cosine", "shrink": 0.0, "weighting": "none"}
SIMS = [("cosine", 0.5), ("asymmetric_cosine", 0.2), ("asymmetric_cosine", 0.9),
        ("jaccard", 0.5)]


# ---- item_knn --------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "alpha"), SIMS)
@pytest.mark.parametrize("weighting", ["none", "tfidf", "bm25"])
@pytest.mark.parametrize("shrink", [0.0, 2.0])
def test_item_similarity_matches_the_dense_formula(kind: str, alpha: float, weighting: str,
                                                   shrink: float) -> None:
    plugin, dataset = fitted(ItemKNN, similarity=kind, alpha=alpha, weighting=weighting,
                             shrink=shrink, neighbours=100)
    x = ordered(dataset, CELLS)
    expected = dense_similarity(dense_weighting(x.T, weighting), kind, alpha, shrink)
    # S[h, t] = s(query t, neighbour h)
    np.testing.assert_allclose(plugin.similarity_.toarray(), expected.T, rtol=1e-5,
                               atol=1e-7)
    scores = plugin.recsdk_score_users(user_ids=list(dataset.user_ids),
                                       candidates=everything(dataset))
    np.testing.assert_allclose(scores, x @ expected.T, rtol=1e-5)


def test_shrink_favours_similarities_with_more_support() -> None:
    # i0/i1 share their one user (cosine 1); i2/i3 share 3 users (cosine 3 / sqrt(4 * 3))
    cells = np.zeros((5, 4))
    cells[0, [0, 1]] = 1
    cells[1:4, 2:4] = 1
    cells[4, 2] = 1
    plain, ds = fitted(ItemKNN, events(cells), **PLAIN)
    shrunk, _ = fitted(ItemKNN, events(cells), **{**PLAIN, "shrink": 5.0})
    code = ds.item_index

    def sim(p: ItemKNN, a: str, b: str) -> float:
        return float(p.similarity_[code[a], code[b]])

    assert sim(plain, "i0", "i1") > sim(plain, "i2", "i3")
    assert sim(shrunk, "i0", "i1") < sim(shrunk, "i2", "i3")
    assert sim(shrunk, "i0", "i1") == pytest.approx(1 / (1 + 5))


@pytest.mark.parametrize("k", [1, 2, 3])
def test_neighbour_truncation_keeps_the_k_most_similar_per_target(k: int) -> None:
    plugin, dataset = fitted(ItemKNN, neighbours=k, **PLAIN)
    x = ordered(dataset, CELLS)
    expected = keep_top(dense_similarity(x.T, "cosine", 0.5, 0.0), k)
    got = plugin.similarity_.toarray()
    assert (np.count_nonzero(got, axis=0) <= k).all()
    np.testing.assert_allclose(got, expected.T, rtol=1e-5)


def test_item_knn_folds_in_an_event_made_after_training() -> None:
    plugin, dataset = fitted(ItemKNN)
    cands = everything(dataset)
    old = UserHistory(["i0", "i1", "i4"], ["view", "view", "purchase"], [0.0, 1.0, 2.0])
    before = plugin.recsdk_score(request=RecommendationRequest(k=10, user_id="u0", history=old),
                                 candidates=cands)
    new = UserHistory([*old.item_ids, "i5"], [*old.types, "purchase"],
                      [*old.timestamps, 1000 * DAY])
    after = plugin.recsdk_score(request=RecommendationRequest(k=10, user_id="u0", history=new),
                                candidates=cands)
    assert before is not None and after is not None
    assert not np.allclose(before, after)
    # every target t gains the new purchase's weight times S[i5, t]
    s = plugin.similarity_.toarray()
    np.testing.assert_allclose(after - before, 3.0 * s[dataset.item_index["i5"]], rtol=1e-5)


def test_item_knn_scores_a_few_candidates_as_it_scores_every_item() -> None:
    """Retrieval hands scorers a few candidates; item_knn then reads them off its sparse
    product instead of a dense row over the catalogue: the same numbers."""
    plugin, dataset = fitted(ItemKNN)
    request = RecommendationRequest(k=10, user_id="u0", history=UserHistory(
        ["i2", "i5"], ["view", "purchase"], [0.0, 1000 * DAY]))
    full = plugin.recsdk_score(request=request, candidates=everything(dataset))
    assert full is not None
    for item in dataset.item_ids:  # one candidate: under a quarter of the six items
        one = CandidateSet(np.array([item], dtype=object), np.array([dataset.item_index[item]]))
        got = plugin.recsdk_score(request=request, candidates=one)
        assert got[0] == pytest.approx(full[dataset.item_index[item]], rel=1e-6), item
    unknown = CandidateSet(np.array(["missing"], dtype=object), np.array([-1]))
    assert np.isnan(plugin.recsdk_score(request=request, candidates=unknown)[0])


def test_unknown_user_without_history_abstains_with_history_is_served() -> None:
    for cls in (ItemKNN, UserKNN):
        plugin, dataset = fitted(cls)
        cands = everything(dataset)
        assert plugin.recsdk_score(request=RecommendationRequest(k=10, user_id="nobody"),
                                   candidates=cands) is None
        served = plugin.recsdk_score(
            request=RecommendationRequest(k=10, user_id="nobody",
                                          history=UserHistory(["i3"], ["view"])),
            candidates=cands)
        assert served is not None and (served > 0).any()
        batch = plugin.recsdk_score_users(user_ids=["nobody", "u1"], candidates=cands)
        assert np.isnan(batch[0]).all() and not np.isnan(batch[1]).any()


def test_unknown_item_scores_nan() -> None:
    for cls in (ItemKNN, UserKNN):
        plugin, _ = fitted(cls)
        cands = CandidateSet(np.array(["i2", "brand-new"], dtype=object), np.array([-1, -1]))
        cands = CandidateSet(cands.ids, np.array([plugin_code(plugin, "i2"), -1]))
        history = UserHistory(["i0"], ["view"])
        scores = plugin.recsdk_score(request=RecommendationRequest(k=10, user_id="u0",
                                                                   history=history),
                                     candidates=cands)
        assert scores is not None and np.isfinite(scores[0]) and np.isnan(scores[1])
        similar = plugin.recsdk_score_similar(item_id="i1", candidates=cands, catalog=None)
        assert similar is not None and np.isnan(similar[1])
        assert plugin.recsdk_score_similar(item_id="brand-new", candidates=cands,
                                           catalog=None) is None


def plugin_code(plugin: KNNPlugin, item: str) -> int:
    rows = plugin.rows_ if isinstance(plugin, ItemKNN) else plugin.model_.rows
    return rows.item_index[item]


# ---- user_knn --------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "alpha"), SIMS)
@pytest.mark.parametrize("weighting", ["none", "bm25"])
@pytest.mark.parametrize("k", [2, 100])
def test_user_scores_match_the_dense_formula(kind: str, alpha: float, weighting: str,
                                             k: int) -> None:
    plugin, dataset = fitted(UserKNN, similarity=kind, alpha=alpha, weighting=weighting,
                             shrink=1.0, neighbours=k)
    x = ordered(dataset, CELLS)
    sim = keep_top(dense_similarity(dense_weighting(x, weighting), kind, alpha, 1.0), k)
    expected = sim @ x
    scores = plugin.recsdk_score_users(user_ids=list(dataset.user_ids),
                                       candidates=everything(dataset))
    np.testing.assert_allclose(scores, expected, rtol=1e-5)
    # the request path gives the same for a user whose history is the training data
    user = dataset.user_ids[3]
    items = [dataset.item_ids[i] for i in np.flatnonzero(x[3])]
    one = plugin.recsdk_score(
        request=RecommendationRequest(k=10, user_id=user, history=UserHistory(items,
                                                                        ["view"] * len(items))),
        candidates=everything(dataset))
    np.testing.assert_allclose(one, expected[3], rtol=1e-5)


def test_user_knn_folds_in_an_event_made_after_training() -> None:
    plugin, dataset = fitted(UserKNN, neighbours=2)
    cands = everything(dataset)
    old = UserHistory(["i0", "i1"], ["view", "purchase"], [0.0, 1.0])
    before = plugin.recsdk_score(request=RecommendationRequest(k=10, user_id="u1", history=old),
                                 candidates=cands)
    new = UserHistory([*old.item_ids, "i5"], [*old.types, "purchase"],
                      [*old.timestamps, 1000 * DAY])
    after = plugin.recsdk_score(request=RecommendationRequest(k=10, user_id="u1", history=new),
                                candidates=cands)
    assert before is not None and after is not None and not np.allclose(before, after)
    # with i5 bought, u4 (the only user with i5) becomes the nearest neighbour
    assert after[dataset.item_index["i5"]] > 0


# ---- state, parameters, errors ---------------------------------------------------------


@pytest.mark.parametrize("cls", [ItemKNN, UserKNN])
def test_state_round_trip_gives_identical_scores(cls: type[KNNPlugin]) -> None:
    params = {"similarity": "asymmetric_cosine", "alpha": 0.3, "weighting": "bm25",
              "shrink": 1.0, "neighbours": 3}
    plugin, dataset = fitted(cls, **params)
    state = plugin.recsdk_save_state()
    assert state and all(isinstance(v, np.ndarray) and v.dtype != object
                         for v in state.values())
    vocab = InteractionDataset.from_vocabulary(dataset.vocabulary_state())
    loaded = cls.from_config(params, name=cls.default_name)
    loaded.recsdk_configure(context=context(cls.default_name))
    loaded.recsdk_load_state(state={k: np.array(v) for k, v in state.items()},
                             dataset=vocab)
    cands = everything(dataset)
    users = list(dataset.user_ids)
    np.testing.assert_array_equal(
        loaded.recsdk_score_users(user_ids=users, candidates=cands),
        plugin.recsdk_score_users(user_ids=users, candidates=cands))
    request = RecommendationRequest(k=10, user_id="u2", history=UserHistory(
        ["i2", "i5"], ["view", "purchase"], [0.0, 1000 * DAY]))
    np.testing.assert_array_equal(loaded.recsdk_score(request=request, candidates=cands),
                                  plugin.recsdk_score(request=request, candidates=cands))
    np.testing.assert_array_equal(
        loaded.recsdk_score_similar(item_id="i1", candidates=cands, catalog=None),
        plugin.recsdk_score_similar(item_id="i1", candidates=cands, catalog=None))


@pytest.mark.parametrize(("params", "fragments"), [
    ({"alpha": 1.5}, ["alpha", "0.0", "1.0"]),
    ({"neighbours": 0}, ["neighbours", "1"]),
    ({"shrink": -1}, ["shrink", "0.0"]),
    ({"similarity": "pearson"}, ["similarity", "cosine", "jaccard"]),
    ({"weighting": "bm26"}, ["weighting", "bm25", "tfidf"]),
    ({"bm25_b": 2}, ["bm25_b", "1.0"]),
    ({"half_life_days": 0}, ["half_life_days", "greater than 0"]),
    ({"neighbors": 5}, ["neighbors", "Unknown field"]),
])
@pytest.mark.parametrize("cls", [ItemKNN, UserKNN])
def test_bad_parameters_name_the_parameter_and_range(cls: type[KNNPlugin], params: dict,
                                                     fragments: list[str]) -> None:
    with pytest.raises(ConfigurationError) as err:
        cls.from_config(params, name=cls.default_name)
    message = str(err.value)
    assert f"plugins.{cls.default_name}" in message
    for fragment in fragments:
        assert fragment in message


@pytest.mark.parametrize("cls", [ItemKNN, UserKNN])
def test_no_interaction_of_the_event_types_names_the_plugin(cls: type[KNNPlugin]) -> None:
    with pytest.raises(ConfigurationError, match=rf"plugins\.{cls.default_name}: .*"
                       r"\['add_to_cart'\]"):
        fitted(cls, event_types=["add_to_cart"])


def test_event_type_filter_learns_from_purchases_only() -> None:
    plugin, dataset = fitted(ItemKNN, event_types=["purchase"], **PLAIN)
    x = ordered(dataset, np.where(CELLS == 3, 3.0, 0.0))
    expected = dense_similarity(x.T, "cosine", 0.5, 0.0)
    np.testing.assert_allclose(plugin.similarity_.toarray(), expected.T, atol=1e-7)


def test_item_knn_similar_items_is_the_similarity_column() -> None:
    plugin, dataset = fitted(ItemKNN, neighbours=2)
    t = dataset.item_index["i1"]
    got = plugin.recsdk_score_similar(item_id="i1", candidates=everything(dataset),
                                      catalog=None)
    np.testing.assert_allclose(got, plugin.similarity_.toarray()[:, t])
    assert np.count_nonzero(got) == 2


def test_user_knn_similar_items_is_item_cosine() -> None:
    plugin, dataset = fitted(UserKNN, **PLAIN)
    x = ordered(dataset, CELLS)
    expected = dense_similarity(x.T, "cosine", 0.5, 0.0)
    t = dataset.item_index["i1"]
    got = plugin.recsdk_score_similar(item_id="i1", candidates=everything(dataset),
                                      catalog=None)
    np.testing.assert_allclose(got, expected[t], rtol=1e-6)


# ---- end to end through the SDK --------------------------------------------------------


def shop_events(n_users: int = 40) -> list[dict[str, Any]]:
    """Two tastes: even users view hats (even items), odd users shoes (odd items)."""
    rng = np.random.default_rng(3)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    rows = []
    for u in range(n_users):
        parity = u % 2
        pool = [i for i in range(20) if i % 2 == parity]
        weights = 1.0 / np.arange(1, len(pool) + 1)
        for j, item in enumerate(rng.choice(pool, size=4, replace=False,
                                            p=weights / weights.sum())):
            rows.append({"user_id": f"u{u}", "item_id": f"i{int(item)}", "type": "view",
                         "timestamp": (start + timedelta(minutes=10 * u + j)).isoformat()})
    return rows


@pytest.mark.parametrize("name", ["item_knn", "user_knn"])
def test_sdk_serves_returning_users_their_taste_and_new_users_popularity(
        tmp_path: Path, name: str) -> None:
    items = [{"id": f"i{i}", "title": f"Item {i}", "category_id": "c", "stock": 5}
             for i in range(20)]
    config = {"database_url": f"sqlite:///{tmp_path / 'shop.db'}",
              "pipeline": {"timeout_ms": 10_000},  # no timeouts on a loaded CI machine
              "plugins": {name: {"neighbours": 10}, "popularity": {"weight": 0.1}}}
    with RecSDK(config, environ={}) as sdk:
        sdk.upsert_categories([{"id": "c", "name": "C"}])
        sdk.upsert_items(items)
        sdk.track_many(shop_events())
        sdk.fit()
        returning = sdk.recommend("u1", k=5).item_ids  # an odd (shoes) user
        new = sdk.recommend("stranger", k=5).item_ids
        assert returning != new
        assert all(int(i[1:]) % 2 == 1 for i in returning)
        # a new user's first click is folded in without retraining
        sdk.track({"user_id": "stranger", "item_id": "i1", "type": "view"})
        after = sdk.recommend("stranger", k=5).item_ids
        assert after != new and all(int(i[1:]) % 2 == 1 for i in after)
