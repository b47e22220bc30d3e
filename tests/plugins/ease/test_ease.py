"""EASE^R: the closed form against a dense numpy reference, fold-in, the item limit, state."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from recsdk_plugins.ease import EASE

from recsdk import RecSDK
from recsdk.config import Settings
from recsdk.dataset import InteractionDataset
from recsdk.errors import ConfigurationError
from recsdk.types import CandidateSet, PluginContext, RecommendationRequest, UserHistory
from tests.core.shop import fill

WEIGHTS = {"view": 1.0, "purchase": 4.0}
DAY = 86400.0


def events(n_users: int = 12, n_items: int = 6, seed: int = 0) -> pd.DataFrame:
    """Random views and purchases; item i5 is touched by one user only (least popular)."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        for i in range(n_items - 1):
            if rng.random() < 0.5:
                rows.append((f"u{u}", f"i{i}", "purchase" if rng.random() < 0.3 else "view",
                             float(u * DAY)))
    rows.append(("u0", f"i{n_items - 1}", "view", 0.0))
    return pd.DataFrame(rows, columns=["user_id", "item_id", "type", "timestamp"])


def fitted(frame: pd.DataFrame | None = None, **params: Any) -> tuple[EASE, InteractionDataset]:
    dataset = InteractionDataset.from_frame(events() if frame is None else frame,
                                            event_weights=WEIGHTS)
    plugin = EASE.from_config(params, "ease")
    context = PluginContext(settings=Settings(event_weights=WEIGHTS), seed=1)
    plugin.recsdk_configure(context=context)
    plugin.recsdk_fit(dataset=dataset, context=context)
    return plugin, dataset


def reference(dataset: InteractionDataset, l2: float,
              items: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """X and B by the paper's formula in float64 on the dense matrix."""
    x = np.zeros((dataset.n_users, dataset.n_items))
    inter = dataset.interactions
    np.add.at(x, (inter["user"], inter["item"]), inter["type"].map(WEIGHTS).to_numpy())
    if items is not None:
        x = x[:, items]
    p = np.linalg.inv(x.T @ x + l2 * np.eye(x.shape[1]))
    return x, np.eye(len(p)) - p / np.diag(p)


def all_candidates(dataset: InteractionDataset) -> CandidateSet:
    return CandidateSet(dataset.item_ids, np.arange(dataset.n_items))


def test_weights_match_the_dense_numpy_reference_with_a_zero_diagonal() -> None:
    plugin, dataset = fitted(l2=3.0)
    x, b = reference(dataset, 3.0)
    assert plugin.b_.dtype == np.float32
    np.testing.assert_allclose(plugin.b_, b, rtol=1e-4, atol=1e-5)
    assert not np.diag(plugin.b_).any()
    scores = plugin.recsdk_score_users(user_ids=list(dataset.user_ids),
                                       candidates=all_candidates(dataset))
    np.testing.assert_allclose(scores, x @ b, rtol=1e-4, atol=1e-5)


def test_order_window_solves_the_window_gram_and_scores_the_plain_rows() -> None:
    frame = events()
    frame["timestamp"] = np.random.default_rng(3).permutation(len(frame)).astype(float)
    plugin, dataset = fitted(frame, l2=3.0, order_window=2)
    # the window Gram by its definition: each user's history in time order cut into
    # overlapping windows of 3 events, each event's weight over sqrt(3) in each of its windows
    windows = []
    for _, mine in dataset.interactions.sort_values("timestamp", kind="stable").groupby("user"):
        events_ = list(zip(mine["item"], mine["type"].map(WEIGHTS), strict=True))
        for start in range(-2, len(events_)):
            row = np.zeros(dataset.n_items)
            for item, weight in events_[max(start, 0):start + 3]:
                row[item] += weight / np.sqrt(3.0)
            windows.append(row)
    m = np.array(windows)
    p = np.linalg.inv(m.T @ m + 3.0 * np.eye(dataset.n_items))
    b = np.eye(len(p)) - p / np.diag(p)
    np.testing.assert_allclose(plugin.b_, b, rtol=1e-4, atol=1e-5)
    x, _ = reference(dataset, 3.0)
    scores = plugin.recsdk_score_users(user_ids=list(dataset.user_ids),
                                       candidates=all_candidates(dataset))
    np.testing.assert_allclose(scores, x @ b, rtol=1e-4, atol=1e-5)
    plain, _ = fitted(frame, l2=3.0)
    assert not np.allclose(plain.b_, plugin.b_, atol=1e-3)  # the order changed the model


def test_min_value_learns_as_if_only_the_well_rated_events_were_there() -> None:
    frame = events()
    frame["value"] = np.random.default_rng(4).integers(1, 6, len(frame)).astype(float)
    liked, dataset = fitted(frame, l2=3.0, order_window=2, min_value=4.0)
    kept = frame[frame["value"] >= 4]
    # the same vocabulary, every cell of a low rating at weight 0 instead of dropped
    alone, _ = fitted(pd.concat([kept, frame[frame["value"] < 4].assign(type="skip")]),
                      l2=3.0, order_window=2, event_types=["view", "purchase"])
    np.testing.assert_allclose(liked.b_, alone.b_, rtol=1e-5, atol=1e-6)
    everything, _ = fitted(frame, l2=3.0, order_window=2)
    users, candidates = list(dataset.user_ids), all_candidates(dataset)
    assert not np.allclose(  # the floor changed the model
        everything.recsdk_score_users(user_ids=users, candidates=candidates),
        liked.recsdk_score_users(user_ids=users, candidates=candidates), equal_nan=True)
    # a request's new low-rated event adds nothing to the row it scores
    user = str(kept["user_id"].iloc[0])
    request = RecommendationRequest(user_id=user, k=3, history=UserHistory(
        ["i1"], ["purchase"], [1e9], [1.0]))
    before = liked.recsdk_score_users(user_ids=[user], candidates=all_candidates(dataset))[0]
    after = liked.recsdk_score(request=request, candidates=all_candidates(dataset))
    np.testing.assert_allclose(after, before, rtol=1e-6)


def test_dropout_penalises_each_item_by_its_own_weight_as_edlae() -> None:
    # Steck (2020), EDLAE with a zero diagonal: EASE's solve with the penalty
    # Lambda = p / (1 - p) diag(X^T X) + lambda I instead of lambda I
    plugin, dataset = fitted(l2=3.0, dropout=0.4)
    x, _ = reference(dataset, 3.0)
    g = x.T @ x
    p = np.linalg.inv(g + np.diag(0.4 / 0.6 * np.diag(g) + 3.0))
    b = np.eye(len(p)) - p / np.diag(p)
    np.testing.assert_allclose(plugin.b_, b, rtol=1e-4, atol=1e-5)
    assert not np.allclose(plugin.b_, fitted(l2=3.0)[0].b_, atol=1e-3)


def test_new_events_fold_in_without_refitting_and_strangers_with_history_are_served() -> None:
    plugin, dataset = fitted(l2=3.0)
    x, b = reference(dataset, 3.0)
    candidates = all_candidates(dataset)
    code = dataset.user_index["u1"]
    newest = dataset.interactions["timestamp"].max()
    history = UserHistory(["i5"], ["purchase"], [newest + 1.0])
    got = plugin.recsdk_score(request=RecommendationRequest("u1", k=5, history=history),
                              candidates=candidates)
    row = x[code].copy()
    row[dataset.item_index["i5"]] += WEIGHTS["purchase"]
    np.testing.assert_allclose(got, row @ b, rtol=1e-4, atol=1e-5)
    assert not np.allclose(got, x[code] @ b)
    stranger = plugin.recsdk_score(
        request=RecommendationRequest("new", k=5, history=UserHistory(["i0", "zz"], ["view"] * 2)),
        candidates=candidates)
    np.testing.assert_allclose(stranger, b[dataset.item_index["i0"]], rtol=1e-4, atol=1e-5)


def test_unknown_users_abstain_and_unknown_items_are_nan() -> None:
    plugin, _ = fitted(l2=3.0)
    candidates = CandidateSet(np.array(["i0", "brand-new"], dtype=object), np.array([0, -1]))
    empty = RecommendationRequest("new", k=5, history=UserHistory())
    assert plugin.recsdk_score(request=empty, candidates=candidates) is None
    only_unknown = UserHistory(["never-seen"], ["view"])
    assert plugin.recsdk_score(request=RecommendationRequest("new", k=5, history=only_unknown),
                               candidates=candidates) is None
    scores = plugin.recsdk_score_users(user_ids=["u0", "stranger"], candidates=candidates)
    assert np.isfinite(scores[0, 0]) and np.isnan(scores[0, 1])
    assert np.isnan(scores[1]).all()
    assert plugin.recsdk_score_similar(item_id="brand-new", candidates=candidates,
                                       catalog=None) is None


def test_beyond_max_items_the_model_keeps_the_most_used_items_or_refuses(
        caplog: pytest.LogCaptureFixture) -> None:
    plugin, dataset = fitted(l2=3.0, max_items=3)
    assert "plugins.ease: 6 items have interactions, more than max_items = 3" in caplog.text
    users = np.diff(dataset.matrix.tocsc().indptr)
    kept = np.sort(np.argsort(-users, kind="stable")[:3])
    np.testing.assert_array_equal(plugin.items_, kept)
    x, b = reference(dataset, 3.0, kept)
    np.testing.assert_allclose(plugin.b_, b, rtol=1e-4, atol=1e-5)
    scores = plugin.recsdk_score_users(user_ids=list(dataset.user_ids),
                                       candidates=all_candidates(dataset))
    dropped = np.setdiff1d(np.arange(dataset.n_items), kept)
    assert np.isnan(scores[:, dropped]).all()
    has_history = x.any(axis=1)
    np.testing.assert_allclose(scores[has_history][:, kept], (x @ b)[has_history],
                               rtol=1e-4, atol=1e-5)
    with pytest.raises(ConfigurationError,
                       match=r"plugins\.ease: 6 items .* max_items = 3 .* on_too_large"):
        fitted(max_items=3, on_too_large="error")


@pytest.mark.parametrize(("params", "name"), [({"l2": 0}, "l2"), ({"max_items": 1}, "max_items"),
                                              ({"on_too_large": "drop"}, "on_too_large"),
                                              ({"order_window": -1}, "order_window"),
                                              ({"dropout": 1.0}, "dropout"),
                                              ({"dropout": -0.1}, "dropout"),
                                              ({"lambda": 3}, "lambda")])
def test_bad_parameters_are_refused_by_name(params: dict[str, Any], name: str) -> None:
    with pytest.raises(ConfigurationError, match=rf"plugins\.ease: invalid .*'{name}'"):
        EASE.from_config(params, "ease")


def test_no_interaction_of_the_event_types_names_the_plugin() -> None:
    with pytest.raises(ConfigurationError, match=r"plugins\.ease: .*add_to_cart"):
        fitted(event_types=["add_to_cart"])


def test_similar_items_are_the_row_of_b() -> None:
    plugin, dataset = fitted(l2=3.0)
    _, b = reference(dataset, 3.0)
    got = plugin.recsdk_score_similar(item_id="i2", candidates=all_candidates(dataset),
                                      catalog=None)
    np.testing.assert_allclose(got, b[dataset.item_index["i2"]], rtol=1e-4, atol=1e-5)


def test_state_round_trip_through_the_registry_memory_mapped(tmp_path: Path) -> None:
    config = {"database_url": f"sqlite:///{tmp_path / 'shop.db'}",
              "pipeline": {"timeout_ms": 10_000},  # no timeouts on a loaded CI machine
              "plugins": {"ease": {"l2": 5.0}, "popularity": {}},
              "models": {"inline_max_bytes": 0, "model_refresh_s": 0}}
    with RecSDK(config, environ={}) as sdk:
        fill(sdk)
        sdk.fit()
        before = sdk.plugins.get("ease")
        lists = {u: sdk.recommend(u, k=5).item_ids for u in ("u1", "u6", "stranger")}
        with RecSDK(config, environ={}) as other:
            after = other.plugins.get("ease")
            assert isinstance(after.b_, np.memmap)
            np.testing.assert_array_equal(after.b_, before.b_)
            np.testing.assert_array_equal(after.items_, before.items_)
            assert {u: other.recommend(u, k=5).item_ids for u in lists} == lists


def test_blockwise_gram_and_mirror_match_the_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    # big catalogues build G and mirror P in column blocks; force several on a tiny one
    import recsdk_plugins.ease as ease

    monkeypatch.setattr(ease, "MIN_BLOCK", 2)
    monkeypatch.setattr(ease, "GRAM_SPLITS", 3)
    plugin, dataset = fitted(events(n_users=30, n_items=9), l2=2.0)
    _, b = reference(dataset, 2.0)
    np.testing.assert_allclose(plugin.b_, b, rtol=1e-4, atol=1e-5)
