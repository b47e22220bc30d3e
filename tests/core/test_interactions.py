"""The weighted matrix every collaborative plugin learns from, and its request-time fold-in."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest

from recsdk.dataset import InteractionDataset
from recsdk.errors import ConfigurationError
from recsdk.interactions import (
    UserRows,
    Weighting,
    WeightingParams,
    candidate_scores,
    close_pairs,
    weighted_matrix,
)
from recsdk.types import CandidateSet, UserHistory

WEIGHTS = {"view": 1.0, "purchase": 8.0, "return": -8.0}
DAY = 86400.0


def dataset() -> InteractionDataset:
    events = pd.DataFrame({
        "user_id": ["a", "a", "a", "b", "b"],
        "item_id": ["x", "y", "y", "x", "z"],
        "type": ["view", "purchase", "return", "purchase", "view"],
        "timestamp": [0.0, DAY, 2 * DAY, 0.0, 2 * DAY],
    })
    return InteractionDataset.from_frame(events, event_weights=WEIGHTS)


def dense(ds: InteractionDataset, weighting: Weighting) -> dict[tuple[str, str], float]:
    matrix, _ = weighted_matrix(ds, weighting, "p")
    coo = matrix.tocoo()
    return {(ds.user_ids[u], ds.item_ids[i]): float(v)
            for u, i, v in zip(coo.row, coo.col, coo.data, strict=True)}


def test_type_weights_sum_and_a_return_cancels_the_purchase() -> None:
    cells = dense(dataset(), Weighting(WEIGHTS))
    assert cells == {("a", "x"): 1.0, ("b", "x"): 8.0, ("b", "z"): 1.0}


def test_event_type_filter_and_time_decay() -> None:
    ds = dataset()
    assert dense(ds, Weighting(WEIGHTS, ("purchase",))) == {("a", "y"): 8.0, ("b", "x"): 8.0}
    cells = dense(ds, Weighting(WEIGHTS, ("purchase",), half_life_days=1.0))
    # data end is day 2: a's purchase (day 1) halves once, b's (day 0) twice
    assert cells == {("a", "y"): 4.0, ("b", "x"): 2.0}


def rated() -> InteractionDataset:
    """Ratings as event values; c's view of y carries none."""
    events = pd.DataFrame({
        "user_id": ["a", "a", "b", "b", "c"],
        "item_id": ["x", "y", "x", "z", "y"],
        "type": ["view"] * 5,
        "timestamp": [0.0, DAY, 0.0, 2 * DAY, DAY],
        "value": [5.0, 2.0, 4.0, 3.5, np.nan],
    })
    return InteractionDataset.from_frame(events, event_weights=WEIGHTS)


def test_min_value_keeps_only_events_rated_at_least_it() -> None:
    ds = rated()
    assert len(dense(ds, Weighting(WEIGHTS))) == 5  # no floor: every event
    # a's 2 and b's 3.5 are below the floor; c's event has no value and counts nothing
    assert dense(ds, Weighting(WEIGHTS, min_value=4.0)) == {("a", "x"): 1.0, ("b", "x"): 1.0}
    assert Weighting.from_params({"min_value": 4.0}, WEIGHTS).min_value == 4.0


def test_min_value_applies_to_request_rows_and_close_pairs() -> None:
    ds = rated()
    rows = UserRows.fit(ds, Weighting(WEIGHTS, min_value=4.0), "p")
    history = UserHistory(["y", "z"], ["view", "view"], [3 * DAY, 3 * DAY], [1.0, 5.0])
    row = rows.request_row("a", history)
    assert {ds.item_ids[i] for i in row.indices} == {"x", "z"}  # the new 1-star y is left out
    pairs = [(int(d), ds.item_ids[a].tolist()) for d, a, _, _ in close_pairs(ds, rows, 1)]
    assert pairs == [(0, ["x", "x"]), (1, [])]  # one kept event per user: no pair of two


def test_min_value_above_every_value_names_the_floor() -> None:
    with pytest.raises(ConfigurationError, match=r"plugins\.ease: .*at least min_value = 6"):
        weighted_matrix(rated(), Weighting(WEIGHTS, min_value=6.0), "ease")


def test_min_value_without_values_is_an_error_naming_what_is_missing() -> None:
    with pytest.raises(ValueError, match="min_value needs the events' values"):
        Weighting(WEIGHTS, min_value=4.0).weights(["view"], np.zeros(1), 0.0)


def test_params_reject_a_non_number_min_value() -> None:
    assert "min_value" in WeightingParams().validate({"min_value": "good"})
    assert WeightingParams().validate({"min_value": 4}) == {}


def test_no_interaction_of_the_plugins_types_names_plugin_and_types() -> None:
    with pytest.raises(ConfigurationError, match=r"plugins\.als: .*\['add_to_cart'\].*"
                       r"present: \['purchase', 'return', 'view'\]"):
        weighted_matrix(dataset(), Weighting(WEIGHTS, ("add_to_cart",)), "als")


def test_request_row_adds_only_events_newer_than_training() -> None:
    ds = dataset()
    rows = UserRows.fit(ds, Weighting(WEIGHTS), "p")
    history = UserHistory(["x", "z"], ["view", "purchase"], [0.0, 3 * DAY])
    row = rows.request_row("a", history)
    got = {ds.item_ids[i]: v for i, v in zip(row.indices, row.data, strict=True)}
    # the old view of x is in the training row already; the purchase of z is new
    assert got == {"x": 1.0, "z": 8.0}


def test_request_row_of_an_unknown_user_is_the_whole_history_known_items_only() -> None:
    ds = dataset()
    rows = UserRows.fit(ds, Weighting(WEIGHTS), "p")
    row = rows.request_row("new", UserHistory(["y", "never-seen"], ["view", "view"]))
    assert [ds.item_ids[i] for i in row.indices] == ["y"]
    assert rows.request_row(None, UserHistory()).nnz == 0


def test_state_round_trip_and_batch_rows_mark_unknown_users() -> None:
    ds = dataset()
    weighting = Weighting(WEIGHTS)
    rows = UserRows.fit(ds, weighting, "p")
    loaded = UserRows.from_state(rows.state(), InteractionDataset.from_vocabulary(
        ds.vocabulary_state()), weighting)
    batch, known = loaded.batch_rows(["b", "nobody", "a"])
    assert known.tolist() == [True, False, True]
    np.testing.assert_array_equal(batch[0].toarray(), rows.matrix[1].toarray())
    assert batch[1].nnz == 0
    assert loaded.data_end == rows.data_end == 2 * DAY


def test_candidate_scores_are_nan_for_unknown_codes() -> None:
    scores = np.array([[1.0, 2.0, 3.0]])
    cands = CandidateSet(np.array(["c", "new", "a"], dtype=object), np.array([2, -1, 0]))
    out = candidate_scores(scores, cands)
    assert out[0, 0] == 3.0 and np.isnan(out[0, 1]) and out[0, 2] == 1.0


def test_params_reject_a_non_positive_half_life_naming_the_range() -> None:
    errors = WeightingParams().validate({"half_life_days": 0})
    assert "half_life_days" in errors and "greater than 0" in str(errors)


def rows(ds: InteractionDataset) -> UserRows:
    return UserRows.fit(ds, Weighting.from_params({}, WEIGHTS), "p")


def summed(pairs: Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray]],
           n_items: int) -> np.ndarray:
    """The items x items matrix of the close pairs, both orders for d > 0."""
    out = np.zeros((n_items, n_items))
    for d, a, b, w in pairs:
        np.add.at(out, (a, b), w)
        if d:
            np.add.at(out, (b, a), w)
    return out


def pair_counts(events: pd.DataFrame, ds: InteractionDataset, weights: dict[str, float],
                window: int) -> np.ndarray:
    """Brute force: for every user's positively weighted events on items they did not
    cancel (net weight > 0), in time order (ties in log order), w_a w_b (1 - d / (window
    + 1)) for each pair d <= window apart."""
    out = np.zeros((ds.n_items, ds.n_items))
    weighted = events.assign(w=events["type"].map(weights))
    net = weighted.groupby(["user_id", "item_id"])["w"].transform("sum")
    for _, mine in weighted[(weighted["w"] > 0) & (net > 0)].sort_values(
            "timestamp", kind="stable").groupby("user_id"):
        codes = [ds.item_index[i] for i in mine["item_id"]]
        w = mine["w"].to_numpy()
        for a in range(len(codes)):
            for b in range(len(codes)):
                d = abs(a - b)
                if d <= window:
                    out[codes[a], codes[b]] += w[a] * w[b] * (1 - d / (window + 1))
    return out


@pytest.mark.parametrize("window", [1, 2, 5])
def test_close_pairs_count_pairs_close_in_each_users_time_order(window: int) -> None:
    rng = np.random.default_rng(window)
    events = pd.DataFrame({
        "user_id": rng.choice(["a", "b", "c"], 40),
        "item_id": rng.choice([f"i{k}" for k in range(8)], 40),
        "type": rng.choice(["view", "purchase", "return"], 40, p=[0.6, 0.3, 0.1]),
        "timestamp": rng.integers(0, 10, 40).astype(float) * DAY,  # ties: log order
    })
    ds = InteractionDataset.from_frame(events, event_weights=WEIGHTS)
    gram = summed(close_pairs(ds, rows(ds), window),
                  ds.n_items)
    np.testing.assert_allclose(gram, pair_counts(events, ds, WEIGHTS, window),
                               rtol=1e-9, atol=1e-9)


def test_close_pairs_keep_items_far_apart_in_time_order_apart() -> None:
    # one user, x y z in time order: with window 1, x and z (two apart) share no window
    events = pd.DataFrame({"user_id": ["a"] * 3, "item_id": ["z", "x", "y"],
                           "type": ["view"] * 3, "timestamp": [2.0, 0.0, 1.0]})
    ds = InteractionDataset.from_frame(events, event_weights=WEIGHTS)
    gram = summed(close_pairs(ds, rows(ds), 1), ds.n_items)
    x, y, z = (ds.item_index[i] for i in "xyz")
    assert gram[x, z] == 0
    assert gram[x, y] == pytest.approx(0.5) and gram[y, z] == pytest.approx(0.5)
    np.testing.assert_allclose(np.diag(gram), 1.0)  # the plain matrix's diagonal


def test_close_pairs_skip_an_item_its_user_returned() -> None:
    # b bought x, viewed y, returned x: x and y are not a pair of b's (x nets -0)
    events = pd.DataFrame({"user_id": ["b"] * 3, "item_id": ["x", "y", "x"],
                           "type": ["purchase", "view", "return"],
                           "timestamp": [0.0, 1.0, 2.0]})
    ds = InteractionDataset.from_frame(events, event_weights=WEIGHTS)
    gram = summed(close_pairs(ds, rows(ds), 2), ds.n_items)
    x, y = ds.item_index["x"], ds.item_index["y"]
    assert gram[x].sum() == 0 and gram[y, y] == 1.0
