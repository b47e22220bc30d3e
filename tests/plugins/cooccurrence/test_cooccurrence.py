"""The cooccurrence plugin: measures checked by hand on tiny baskets, sessions, state."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from recsdk_plugins.cooccurrence import (
    Cooccurrence,
    association_matrix,
    session_codes,
    session_owners,
)

from recsdk.config import DEFAULT_EVENT_WEIGHTS, Settings
from recsdk.dataset import InteractionDataset
from recsdk.errors import ConfigurationError
from recsdk.plugin_manager import discover_plugins
from recsdk.types import CandidateSet, PluginContext, RecommendationRequest, UserHistory

MIN = 60.0
DAY = 86400.0
T0 = 1_700_000_000.0

#: Five baskets, one user each, all purchases:
#: {a, b, c}, {a, b}, {a, c}, {b, d}, {e}.  N = 5; n(a) = n(b) = 3, n(c) = 2,
#: n(d) = n(e) = 1; n(a,b) = n(a,c) = 2, n(b,c) = n(b,d) = 1.
BASKETS = [["a", "b", "c"], ["a", "b"], ["a", "c"], ["b", "d"], ["e"]]


def events_of(baskets: Sequence[Sequence[str]], kind: str = "purchase",
              spacing: float = 1.0) -> pd.DataFrame:
    rows = []
    for u, basket in enumerate(baskets):
        for j, item in enumerate(basket):
            rows.append((f"u{u}", item, kind, T0 + u * DAY + j * spacing))
    return pd.DataFrame(rows, columns=["user_id", "item_id", "type", "timestamp"])


def fitted(events: pd.DataFrame, **params: Any) -> tuple[Cooccurrence, InteractionDataset]:
    dataset = InteractionDataset.from_frame(events, None, DEFAULT_EVENT_WEIGHTS)
    # hand computations below are of the plain measures: no shrinkage unless asked
    plugin = Cooccurrence.from_config({"shrinkage": 0.0, **params}, name="cooccurrence")
    context = PluginContext(settings=Settings(event_weights=DEFAULT_EVENT_WEIGHTS))
    plugin.recsdk_configure(context=context)
    plugin.recsdk_fit(dataset=dataset, context=context)
    return plugin, dataset


def candidates(dataset: InteractionDataset, ids: Sequence[str]) -> CandidateSet:
    return CandidateSet(np.array(ids, dtype=object), dataset.item_codes(ids))


def association(plugin: Cooccurrence, dataset: InteractionDataset, a: str, b: str) -> float:
    idx = dataset.item_index
    return float(plugin.associations_[idx[a], idx[b]])


def similar(plugin: Cooccurrence, dataset: InteractionDataset, item: str,
            ids: Sequence[str]) -> np.ndarray:
    return plugin.recsdk_score_similar(item_id=item, candidates=candidates(dataset, ids),
                                       catalog=None)


@pytest.mark.parametrize(("measure", "expected"), [
    ("support", {("a", "b"): 2 / 5, ("a", "c"): 2 / 5, ("b", "c"): 1 / 5, ("b", "d"): 1 / 5}),
    ("confidence", {("a", "b"): 2 / 3, ("b", "a"): 2 / 3, ("c", "a"): 1.0, ("d", "b"): 1.0,
                    ("b", "d"): 1 / 3, ("c", "b"): 1 / 2}),
    ("lift", {("a", "b"): 10 / 9, ("a", "c"): 5 / 3, ("c", "a"): 5 / 3, ("b", "d"): 5 / 3,
              ("b", "c"): 5 / 6}),
])
def test_measures_match_hand_computation(measure: str,
                                         expected: Mapping[tuple[str, str], float]) -> None:
    plugin, dataset = fitted(events_of(BASKETS), measure=measure, min_support=1)
    assert plugin.n_baskets_ == 5
    for (a, b), value in expected.items():
        assert association(plugin, dataset, a, b) == pytest.approx(value, rel=1e-6), (a, b)
    # never associated, and no self-pairs
    assert association(plugin, dataset, "a", "e") == 0
    assert association(plugin, dataset, "a", "a") == 0
    scores = similar(plugin, dataset, "a", ["b", "c", "d", "e"])
    assert scores[0] == pytest.approx(expected.get(("a", "b")), rel=2e-3)
    a_to_c = {"support": 2 / 5, "confidence": 2 / 3, "lift": 5 / 3}[measure]
    assert scores[1] == pytest.approx(a_to_c, rel=2e-3)
    # unassociated items are ordered by basket popularity, below every associated one
    assert 0 < scores[3] <= scores[2] < min(scores[:2])


def test_min_support_drops_rare_pairs() -> None:
    plugin, dataset = fitted(events_of(BASKETS), measure="support", min_support=2)
    assert association(plugin, dataset, "a", "b") == pytest.approx(0.4)
    assert association(plugin, dataset, "b", "c") == 0
    assert association(plugin, dataset, "b", "d") == 0
    assert plugin.associations_.nnz == 4  # (a,b), (b,a), (a,c), (c,a)


def test_neighbours_keep_the_best_partners() -> None:
    plugin, dataset = fitted(events_of(BASKETS), measure="confidence", min_support=1,
                             neighbours=1)
    row = plugin.associations_[dataset.item_index["b"]]
    assert row.nnz == 1 and row.indices[0] == dataset.item_index["a"]


def test_shrinkage_multiplies_by_count_over_count_plus_shrinkage() -> None:
    plain, dataset = fitted(events_of(BASKETS), measure="lift", min_support=1)
    shrunk, _ = fitted(events_of(BASKETS), measure="lift", min_support=1, shrinkage=2.0)
    for (a, b), n_ab in {("a", "b"): 2, ("b", "d"): 1}.items():
        assert association(shrunk, dataset, a, b) == pytest.approx(
            association(plain, dataset, a, b) * n_ab / (n_ab + 2.0))
    # the rare pair (b,d) had the same lift as (a,c); shrunk, it falls behind it
    assert association(shrunk, dataset, "b", "d") < association(shrunk, dataset, "a", "c")


def test_blocks_give_the_same_matrix_as_one_product() -> None:
    rng = np.random.default_rng(0)
    baskets = sp.csr_matrix((rng.random((300, 40)) < 0.1).astype(float))
    weights = rng.random(300)
    whole, counts, total = association_matrix(baskets, weights, "lift", 1, 40, 1.0)
    blocked, counts2, total2 = association_matrix(baskets, weights, "lift", 1, 40, 1.0,
                                                  block_pairs=50)
    assert (whole != blocked).nnz == 0 and total == total2
    np.testing.assert_allclose(counts, counts2)
    dense = baskets.T @ sp.diags(weights) @ baskets
    dense = dense.toarray()
    np.fill_diagonal(dense, 0)
    expected = dense * total / np.outer(counts, counts) * dense / (dense + 1.0)
    np.testing.assert_allclose(whole.toarray(), expected, rtol=1e-5)


def test_sessions_split_by_gap_and_by_session_id() -> None:
    users = np.array([0, 0, 0, 0, 1])
    ts = np.array([0, 10, 50, 70, 5]) * MIN
    # gaps of 10, 40 and 20 minutes: cut at 40 > 30
    codes = session_codes(users, ts, None, 30 * MIN)
    assert codes[0] == codes[1] != codes[2] == codes[3] != codes[4]
    # explicit session ids win over time: one id spans the 40-minute gap, two ids split
    # events a minute apart
    ids = ["s1", "s2", "s2", "s2", None]
    codes = session_codes(users, np.array([0, 1, 50, 70, 5]) * MIN, ids, 30 * MIN)
    assert codes[0] != codes[1] == codes[2] == codes[3] != codes[4]


def test_a_session_id_two_users_share_is_two_sessions() -> None:
    users = np.array([0, 1, 0, 1, 2, 2])
    ts = np.array([0, 1, 2, 3, 4, 100]) * MIN
    for ids in (["x", "x", "x", "x", None, None],  # raw ids
                np.array([0, 0, 0, 0, -1, -1], dtype=np.int32)):  # the dataset's numbers
        codes = session_codes(users, ts, ids, 30 * MIN)
        assert codes[0] == codes[2] != codes[1] == codes[3]
        # user 2 has no ids: windows of activity, cut by the 96-minute gap
        assert len({*codes[:4]} & {codes[4], codes[5]}) == 0 and codes[4] != codes[5]
    # numbers no two users share are used as they are
    own = session_codes(users, ts, np.array([5, 7, 5, 7, 9, 9], dtype=np.int32), 30 * MIN)
    assert own.tolist() == [5, 7, 5, 7, 9, 9]


def test_session_owners_give_each_sessions_user() -> None:
    users = np.array([3, 4, 3, 8])
    owners = session_owners(np.array([0, 2, 0, 5]), users)
    assert owners.tolist() == [3, -1, 4, -1, -1, 8]


def test_fit_baskets_follow_the_session_gap() -> None:
    # one user buys a and b 10 minutes apart, then c 40 minutes later
    events = pd.DataFrame({"user_id": ["u", "u", "u"], "item_id": ["a", "b", "c"],
                           "type": "purchase", "timestamp": T0 + np.array([0, 10, 50]) * MIN})
    plugin, dataset = fitted(events, measure="support", min_support=1)
    assert plugin.n_baskets_ == 2
    assert association(plugin, dataset, "a", "b") == pytest.approx(0.5)
    assert association(plugin, dataset, "b", "c") == 0
    wide, dataset = fitted(events, measure="support", min_support=1, session_gap_minutes=60)
    assert wide.n_baskets_ == 1
    assert association(wide, dataset, "b", "c") == pytest.approx(1.0)


def test_event_types_filter_and_views_make_also_viewed() -> None:
    events = pd.concat([events_of([["a", "b"]], "view"), events_of([["c", "d"]], "purchase")])
    bought, dataset = fitted(events, measure="support", min_support=1)
    assert association(bought, dataset, "a", "b") == 0
    assert association(bought, dataset, "c", "d") == pytest.approx(1.0)
    viewed, dataset = fitted(events, measure="support", min_support=1,
                             event_types=["view", "click"])
    assert association(viewed, dataset, "a", "b") == pytest.approx(1.0)
    assert association(viewed, dataset, "c", "d") == 0


def test_removed_from_cart_leaves_the_basket() -> None:
    events = pd.DataFrame({
        "user_id": "u", "item_id": ["a", "b", "b", "c"],
        "type": ["add_to_cart", "add_to_cart", "remove_from_cart", "add_to_cart"],
        "timestamp": T0 + np.arange(4.0)})
    weights = {**DEFAULT_EVENT_WEIGHTS, "add_to_cart": 3.0, "remove_from_cart": -3.0}
    dataset = InteractionDataset.from_frame(events, None, weights)
    plugin = Cooccurrence.from_config(
        {"event_types": ["add_to_cart", "remove_from_cart"], "min_support": 1,
         "measure": "support", "shrinkage": 0.0})
    context = PluginContext(settings=Settings(event_weights=weights))
    plugin.recsdk_configure(context=context)
    plugin.recsdk_fit(dataset=dataset, context=context)
    assert association(plugin, dataset, "a", "c") == pytest.approx(1.0)
    assert association(plugin, dataset, "a", "b") == 0


def test_half_life_decays_old_baskets() -> None:
    # {a, b} one day before the newest basket {a, c}: weights 1/2 and 1
    plugin, dataset = fitted(events_of([["a", "b"], ["a", "c"]]), measure="confidence",
                             min_support=1, half_life_days=1.0)
    assert plugin.n_baskets_ == pytest.approx(1.5, rel=1e-4)
    assert association(plugin, dataset, "a", "b") == pytest.approx(1 / 3, rel=1e-4)
    assert association(plugin, dataset, "a", "c") == pytest.approx(2 / 3, rel=1e-4)
    # pruning counts baskets, not decayed weight: the half-weight pair survives 1
    assert association(plugin, dataset, "b", "a") == pytest.approx(1.0, rel=1e-4)


def test_cart_context_scores_the_sum_over_cart_items() -> None:
    plugin, dataset = fitted(events_of(BASKETS), measure="confidence", min_support=1)
    ids = ["a", "b", "c", "d", "e", "new"]
    request = RecommendationRequest(user_id="nobody", k=3, context={"cart": ["c", "d"]})
    scores = plugin.recsdk_score(request=request, candidates=candidates(dataset, ids))
    # conf(c->a) + conf(d->a) = 1 + 0; conf(c->b) + conf(d->b) = 1/2 + 1
    assert scores[0] == pytest.approx(1.0, rel=2e-3)
    assert scores[1] == pytest.approx(1.5, rel=2e-3)
    assert np.isnan(scores[5])  # an item the model never saw
    assert scores[1] > scores[0] > scores[4]
    # a cart of unknown items only and no history: nothing to go on
    empty = RecommendationRequest(user_id=None, k=3, context={"cart": ["zzz"]})
    assert plugin.recsdk_score(request=empty, candidates=candidates(dataset, ids)) is None
    assert plugin.recsdk_score(request=RecommendationRequest(user_id=None, k=3),
                               candidates=candidates(dataset, ids)) is None


def test_history_session_is_the_basket_without_a_cart() -> None:
    plugin, dataset = fitted(events_of(BASKETS), measure="confidence", min_support=1)
    ids = ["a", "b"]
    # the newest session (after a 2-hour gap) holds d only; c is an older session
    history = UserHistory(["c", "d"], ["purchase", "purchase"], [T0, T0 + 2 * 3600])
    scores = plugin.recsdk_score(request=RecommendationRequest(None, 3, history=history),
                                 candidates=candidates(dataset, ids))
    assert scores[1] == pytest.approx(1.0, rel=2e-3) and scores[0] < 1e-3
    # by session id: the newest event's session holds c and d although hours apart
    history = UserHistory(["c", "d"], ["purchase", "purchase"], [T0, T0 + 2 * 3600],
                          session_ids=["s", "s"])
    scores = plugin.recsdk_score(request=RecommendationRequest(None, 3, history=history),
                                 candidates=candidates(dataset, ids))
    assert scores[0] == pytest.approx(1.0, rel=2e-3)
    assert scores[1] == pytest.approx(1.5, rel=2e-3)
    # only views in the session: not a basket of the configured types
    history = UserHistory(["c"], ["view"], [T0])
    assert plugin.recsdk_score(request=RecommendationRequest(None, 3, history=history),
                               candidates=candidates(dataset, ids)) is None


def test_unknown_items_score_nan_and_unknown_query_abstains() -> None:
    plugin, dataset = fitted(events_of(BASKETS), min_support=1)
    scores = similar(plugin, dataset, "a", ["b", "never-seen"])
    assert np.isfinite(scores[0]) and np.isnan(scores[1])
    assert similar(plugin, dataset, "never-seen", ["a", "b"]) is None


def test_score_users_uses_each_users_newest_basket() -> None:
    events = pd.concat([events_of(BASKETS),
                        pd.DataFrame([("u4", "c", "purchase", T0 + 9 * DAY),
                                      ("u9", "a", "view", T0)],
                                     columns=["user_id", "item_id", "type", "timestamp"])])
    plugin, dataset = fitted(events, measure="confidence", min_support=1)
    ids = ["a", "b"]
    scores = plugin.recsdk_score_users(user_ids=["u4", "u3", "u9", "ghost"],
                                       candidates=candidates(dataset, ids))
    # u4's newest basket is {c} (days after {e}); c is now in 3 baskets:
    # conf(c->a) = 2/3, conf(c->b) = 1/3
    np.testing.assert_allclose(scores[0], [2 / 3, 1 / 3], rtol=2e-3)
    # u3: {b, d}: conf(b->a) + conf(d->a) = 2/3, conf(d->b) = 1
    np.testing.assert_allclose(scores[1], [2 / 3, 1.0], rtol=2e-3)
    assert np.isnan(scores[2:]).all()  # only views; unknown user


def test_state_round_trip() -> None:
    plugin, dataset = fitted(events_of(BASKETS), measure="lift", min_support=1,
                             shrinkage=1.0)
    state = plugin.recsdk_save_state()
    assert all(isinstance(v, np.ndarray) and v.dtype != object for v in state.values())
    fresh = Cooccurrence.from_config({"measure": "lift", "min_support": 1, "shrinkage": 1.0})
    fresh.recsdk_configure(context=PluginContext(
        settings=Settings(event_weights=DEFAULT_EVENT_WEIGHTS)))
    fresh.recsdk_load_state(state=state,
                            dataset=InteractionDataset.from_vocabulary(
                                dataset.vocabulary_state()))
    ids = ["a", "b", "c", "d", "e", "x"]
    cands = candidates(dataset, ids)
    request = RecommendationRequest(None, 3, context={"cart": ["a", "b"]})
    np.testing.assert_array_equal(fresh.recsdk_score(request=request, candidates=cands),
                                  plugin.recsdk_score(request=request, candidates=cands))
    np.testing.assert_array_equal(similar(fresh, dataset, "b", ids),
                                  similar(plugin, dataset, "b", ids))
    # the batch path needs the training baskets: after loading it defers to recsdk_score
    assert fresh.recsdk_score_users(user_ids=["u0"], candidates=cands) is None


@pytest.mark.parametrize(("params", "name"), [
    ({"measure": "jaccard"}, "measure"),
    ({"min_support": 0}, "min_support"),
    ({"neighbours": 0}, "neighbours"),
    ({"shrinkage": -1.0}, "shrinkage"),
    ({"session_gap_minutes": 0}, "session_gap_minutes"),
    ({"half_life_days": 0}, "half_life_days"),
    ({"event_types": []}, "event_types"),
    ({"window": 3}, "window"),
])
def test_bad_parameters_name_the_parameter(params: dict[str, Any], name: str) -> None:
    with pytest.raises(ConfigurationError, match=f"plugins.cooccurrence.*{name}"):
        Cooccurrence.from_config(params, name="cooccurrence")


def test_no_events_of_the_configured_types_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match=r"plugins\.cooccurrence.*add_to_cart"):
        fitted(events_of(BASKETS, kind="view"))


def test_registered_as_builtin_plugin() -> None:
    assert discover_plugins()["cooccurrence"].load() is Cooccurrence
