"""rating_mf: planted ratings are recovered, fold-in of a new user, errors, state."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from recsdk_plugins.rating_mf import RatingMF, RatingModel, ridge_rows

from recsdk.config import Settings
from recsdk.dataset import InteractionDataset
from recsdk.errors import ConfigurationError
from recsdk.types import CandidateSet, PluginContext, RecommendationRequest, UserHistory

N_USERS, N_ITEMS, RANK = 60, 40, 2


def planted(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """True ratings mu + b_u + b_i + p_u.q_i (rank 2) and a mask of the observed half."""
    rng = np.random.default_rng(seed)
    p = rng.normal(0, 0.8, (N_USERS, RANK))
    q = rng.normal(0, 0.8, (N_ITEMS, RANK))
    truth = 3.0 + rng.normal(0, 0.4, N_USERS)[:, None] + rng.normal(0, 0.4, N_ITEMS) + p @ q.T
    return truth, rng.random((N_USERS, N_ITEMS)) < 0.5


def frame(truth: np.ndarray, mask: np.ndarray, kind: str = "rating") -> pd.DataFrame:
    users, items = np.nonzero(mask)
    return pd.DataFrame({"user_id": [f"u{u}" for u in users],
                         "item_id": [f"i{i}" for i in items], "type": kind,
                         "timestamp": np.arange(len(users), dtype=float),
                         "value": truth[users, items]})


def fitted(events: pd.DataFrame, **params: Any) -> tuple[RatingMF, InteractionDataset]:
    dataset = InteractionDataset.from_frame(events, event_weights={"rating": 1.0, "view": 1.0})
    plugin = RatingMF.from_config({"factors": 4, "reg": 1.0, **params}, "rating_mf")
    context = PluginContext(settings=Settings(), seed=7)
    plugin.recsdk_fit(dataset=dataset, context=context)
    return plugin, dataset


def rmse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((a - b) ** 2)))


def test_planted_ratings_are_recovered_far_better_than_the_global_mean() -> None:
    truth, mask = planted()
    plugin, dataset = fitted(frame(truth, mask))
    users, items = np.nonzero(~mask)
    pred = plugin.model_.predict(dataset.user_codes(f"u{u}" for u in users),
                                 dataset.item_codes(f"i{i}" for i in items))
    held_out = truth[users, items]
    mean = truth[mask].mean()
    assert rmse(pred, held_out) < 0.5 * rmse(np.full_like(held_out, mean), held_out)
    # deterministic for a seed
    again, _ = fitted(frame(truth, mask))
    np.testing.assert_array_equal(again.model_.user_factors, plugin.model_.user_factors)


def test_predictions_are_clipped_to_the_observed_scale_and_unknown_items_are_nan() -> None:
    truth, mask = planted()
    plugin, _ = fitted(frame(np.clip(np.round(truth), 1, 5), mask))
    stars = plugin.predict("u1", [f"i{i}" for i in range(N_ITEMS)] + ["brand-new"])
    assert np.isnan(stars[-1])
    assert np.nanmin(stars) >= 1.0 and np.nanmax(stars) <= 5.0
    assert np.isnan(plugin.predict("stranger", ["i0", "i1"])).all()


def test_a_new_user_with_ratings_in_history_is_folded_in() -> None:
    truth, mask = planted()
    events = frame(truth, mask)
    plugin, dataset = fitted(events[events["user_id"] != "u0"])  # u0 is kept out
    assert "u0" not in dataset.user_index
    rated = np.flatnonzero(mask[0])
    history = UserHistory([f"i{i}" for i in rated], ["rating"] * len(rated),
                          [0.0] * len(rated), list(truth[0, rated]))
    others = np.flatnonzero(~mask[0])
    ids = [f"i{i}" for i in others]
    stars = plugin.predict("u0", ids, history)
    baseline = rmse(np.full(len(others), truth[1:][mask[1:]].mean()), truth[0, others])
    assert rmse(stars, truth[0, others]) < 0.7 * baseline
    candidates = CandidateSet(np.array(ids, dtype=object), dataset.item_codes(ids))
    scored = plugin.recsdk_score(request=RecommendationRequest("u0", k=5, history=history),
                                 candidates=candidates)
    np.testing.assert_allclose(scored, stars)
    views_only = UserHistory(["i1"], ["view"], [0.0], [4.0])
    assert plugin.recsdk_score(request=RecommendationRequest("u0", k=5, history=views_only),
                               candidates=candidates) is None


def test_fold_in_of_a_known_users_ratings_gives_back_its_stored_factors() -> None:
    truth, mask = planted()
    plugin, dataset = fitted(frame(truth, mask), iterations=60)
    model = plugin.model_
    code = dataset.user_index["u3"]
    items = dataset.item_codes(f"i{i}" for i in np.flatnonzero(mask[3]))
    p, b = model.fold_in(items, truth[3, mask[3]])
    # at convergence the user half-step is exactly this solve
    np.testing.assert_allclose(p, model.user_factors[code], atol=1e-3)
    assert b == pytest.approx(model.user_bias[code], abs=1e-3)


def test_batch_scores_match_single_requests_and_similar_items_use_item_factors() -> None:
    truth, mask = planted()
    plugin, dataset = fitted(frame(truth, mask))
    candidates = CandidateSet(dataset.item_ids, np.arange(dataset.n_items))
    batch = plugin.recsdk_score_users(user_ids=["u2", "stranger"], candidates=candidates)
    single = plugin.recsdk_score(request=RecommendationRequest("u2", k=5,
                                                               history=UserHistory()),
                                 candidates=candidates)
    np.testing.assert_allclose(batch[0], single)
    assert np.isnan(batch[1]).all()
    similar = plugin.recsdk_score_similar(item_id="i3", candidates=candidates, catalog=None)
    q = plugin.model_.item_factors
    code = dataset.item_index["i3"]
    expected = q @ q[code] / (np.linalg.norm(q, axis=1) * np.linalg.norm(q[code]))
    np.testing.assert_allclose(similar, expected)


def test_state_round_trip() -> None:
    truth, mask = planted()
    plugin, dataset = fitted(frame(truth, mask))
    fresh = RatingMF.from_config({}, "rating_mf")
    fresh.recsdk_load_state(state=plugin.recsdk_save_state(),
                            dataset=InteractionDataset.from_vocabulary(
                                dataset.vocabulary_state()))
    assert isinstance(fresh.model_, RatingModel)
    ids = ["i0", "i5", "nope"]
    np.testing.assert_array_equal(fresh.predict("u4", ids), plugin.predict("u4", ids))


def test_ridge_rows_solves_each_rows_penalised_least_squares() -> None:
    rng = np.random.default_rng(3)
    features = rng.normal(size=(6, 2))
    rows = sp.csr_matrix(np.array([[1.0, 0, 2.0, 0, 0, 3.0], [0, 0, 0, 0, 0, 0]]))
    w = ridge_rows(rows, features, 0.5)
    f = np.hstack([features[[0, 2, 5]], np.ones((3, 1))])
    expected = np.linalg.solve(f.T @ f + 0.5 * np.eye(3), f.T @ np.array([1.0, 2.0, 3.0]))
    np.testing.assert_allclose(w[0], expected)
    np.testing.assert_array_equal(w[1], 0.0)
    # into the caller's buffer, stale values and all: every row is overwritten
    buffer = np.full((2, 3), 7.0)
    assert ridge_rows(rows, features, 0.5, out=buffer) is buffer
    np.testing.assert_array_equal(buffer, w)


def test_skipping_the_users_draw_leaves_the_stream_where_drawing_it_did() -> None:
    from recsdk_plugins.rating_mf import _skip_normals

    drawn, skipped = np.random.default_rng(9), np.random.default_rng(9)
    drawn.normal(0.0, 0.1, (1_000, 7))
    _skip_normals(skipped, 7_000, step=999)  # slices that do not divide the count
    np.testing.assert_array_equal(skipped.normal(0.0, 0.1, (50, 7)),
                                  drawn.normal(0.0, 0.1, (50, 7)))


@pytest.mark.parametrize(("params", "name"), [({"factors": 0}, "factors"), ({"reg": -1}, "reg"),
                                              ({"iterations": 0}, "iterations"),
                                              ({"rating_types": []}, "rating_types"),
                                              ({"rank": 3}, "rank")])
def test_bad_parameters_are_refused_by_name(params: dict[str, Any], name: str) -> None:
    with pytest.raises(ConfigurationError, match=rf"plugins\.rating_mf: invalid .*'{name}'"):
        RatingMF.from_config(params, "rating_mf")


def test_no_ratings_of_the_configured_types_names_the_plugin() -> None:
    truth, mask = planted()
    with pytest.raises(ConfigurationError,
                       match=r"plugins\.rating_mf: .*\['stars'\].*present: \['rating'\]"):
        fitted(frame(truth, mask), rating_types=["stars"])
    views = frame(truth, mask, kind="view").assign(value=np.nan)
    with pytest.raises(ConfigurationError, match=r"plugins\.rating_mf: .*\['view'\]"):
        fitted(views, rating_types=["view"])


@pytest.mark.parametrize("entries", [7, 50])
def test_small_solve_batches_give_the_same_model(monkeypatch: pytest.MonkeyPatch,
                                                 entries: int) -> None:
    # large data is solved a few rows and columns at a time; force that on tiny data
    # (60 users with about 20 ratings each, 40 items; d = 5): at 7 every batch is one
    # row with its own columns; at 50 the 40 items' outer products are made once and
    # the 60 users' per batch of two or three rows
    import recsdk_plugins.rating_mf as rating_mf

    truth, mask = planted()
    whole, _ = fitted(frame(truth, mask))
    monkeypatch.setattr(rating_mf, "SOLVE_CELLS", 5 * 5 * entries)  # d = 5
    batched, _ = fitted(frame(truth, mask))
    np.testing.assert_allclose(batched.model_.user_factors, whole.model_.user_factors,
                               atol=1e-8)
    np.testing.assert_allclose(batched.model_.item_bias, whole.model_.item_bias, atol=1e-8)
