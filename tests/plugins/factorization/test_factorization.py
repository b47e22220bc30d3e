"""als, bpr and lmf: planted structure, fold-in, NaN/None contracts, state, parameters."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from recsdk_plugins.factorization import ALS, BPR
from recsdk_plugins.factorization.base import use_gpu
from recsdk_plugins.factorization.foldin import als_fold_in

from recsdk.dataset import InteractionDataset
from recsdk.errors import ConfigurationError
from recsdk.retrieval import EmbeddingRetriever
from recsdk.types import CandidateSet, RecommendationRequest, UserHistory
from tests.plugins.factorization.conftest import (
    CLASSES,
    DAY,
    FAST,
    WEIGHTS,
    context,
    fitted,
    planted_dataset,
    planted_events,
)

MODELS = ("als", "bpr", "bpr_adam", "lmf")


def all_items(ds: InteractionDataset) -> CandidateSet:
    return CandidateSet(ds.item_ids, np.arange(ds.n_items))


def request(user: str | None, items: list[str], times: list[float] | None = None,
            types: list[str] | None = None) -> RecommendationRequest:
    history = UserHistory(items, types or ["view"] * len(items),
                          times or [0.0] * len(items))
    return RecommendationRequest(user_id=user, k=5, history=history)


def group_share(ds: InteractionDataset, scores: np.ndarray, seen: set[str],
                group: int, k: int = 3) -> float:
    """Share of the top k unseen items that belong to ``group`` (0: i0-i9, 1: i10-i19)."""
    order = [i for i in np.argsort(-scores) if ds.item_ids[i] not in seen][:k]
    return float(np.mean([int(ds.item_ids[i][1:]) // 10 == group for i in order]))


@pytest.mark.parametrize("name", MODELS)
def test_each_model_learns_the_planted_groups(name):
    ds = planted_dataset()
    plugin = fitted(name, ds)
    scores = plugin.recsdk_score_users(user_ids=list(ds.user_ids), candidates=all_items(ds))
    events = planted_events()
    shares = [group_share(ds, scores[u], set(events.item_id[events.user_id == user]),
                          int(user[0] == "b"))
              for u, user in enumerate(ds.user_ids)]
    assert np.mean(shares) >= 0.9


@pytest.mark.parametrize("name", MODELS)
def test_fold_in_serves_new_events_and_unknown_users(name):
    ds = planted_dataset()
    plugin = fitted(name, ds)
    candidates = all_items(ds)
    user = "a0"
    seen = list(planted_events().item_id[lambda s: planted_events().user_id == user])
    stored = plugin.recsdk_score(request=request(user, seen), candidates=candidates)
    assert np.allclose(stored, plugin.recsdk_score_users(user_ids=[user],
                                                         candidates=candidates)[0])
    # a burst of purchases of group-b items after training moves the list towards b
    late = ["i10", "i11", "i12", "i13"]
    moved = plugin.recsdk_score(
        request=request(user, seen + late, [0.0] * len(seen) + [20 * DAY] * 4,
                        ["view"] * len(seen) + ["purchase"] * 4),
        candidates=candidates)
    assert not np.allclose(moved, stored)
    gone = set(seen + late)
    assert group_share(ds, moved, gone, 1) > group_share(ds, stored, gone, 1)
    # a user the model never saw, with a history of group-b items, gets group-b items
    new = plugin.recsdk_score(request=request("stranger", ["i14", "i15", "i16"]),
                              candidates=candidates)
    assert group_share(ds, new, {"i14", "i15", "i16"}, 1) >= 2 / 3
    # ... and without a history the plugin abstains
    assert plugin.recsdk_score(request=request("stranger", []), candidates=candidates) is None
    assert plugin.recsdk_score(request=request("x", ["unknown-item"]),
                               candidates=candidates) is None


@pytest.mark.parametrize("name", MODELS)
def test_unknown_items_and_users_are_nan(name):
    ds = planted_dataset()
    plugin = fitted(name, ds)
    candidates = CandidateSet(np.array(["i1", "new", "i12"], dtype=object),
                              np.array([1, -1, 12]))
    got = plugin.recsdk_score(request=request("a0", ["i1"]), candidates=candidates)
    assert np.isfinite(got[[0, 2]]).all() and np.isnan(got[1])
    batch = plugin.recsdk_score_users(user_ids=["a0", "nobody"], candidates=candidates)
    assert np.isnan(batch[1]).all() and np.isnan(batch[0, 1]) and np.isfinite(batch[0, 0])
    similar = plugin.recsdk_score_similar(item_id="i1", candidates=candidates, catalog=None)
    assert np.isnan(similar[1]) and similar[0] == pytest.approx(1.0, abs=1e-5)
    assert plugin.recsdk_score_similar(item_id="new", candidates=candidates,
                                       catalog=None) is None


@pytest.mark.parametrize("name", MODELS)
def test_similar_items_share_the_group(name):
    ds = planted_dataset()
    plugin = fitted(name, ds)
    sims = plugin.recsdk_score_similar(item_id="i3", candidates=all_items(ds), catalog=None)
    group = np.array([int(i[1:]) // 10 for i in ds.item_ids])
    others = ds.item_ids != "i3"
    assert sims[(group == 0) & others].mean() > sims[group == 1].mean() + 0.5


@pytest.mark.parametrize(("name", "index"), [("als", "none"), ("bpr", "hnsw"),
                                             ("bpr_adam", "hnsw"),
                                             ("lmf", "exact")])
def test_state_round_trip_gives_identical_scores(name, index, registry):
    ds = planted_dataset()
    plugin = fitted(name, ds, index=index)
    run = registry.begin_run("cfg", [name])
    state = plugin.recsdk_save_state(artifacts=registry.writer(run, f"plugin:{name}"))
    assert all(isinstance(v, np.ndarray) and v.dtype != object for v in state.values())
    loaded = CLASSES[name].from_config({**FAST[name], "index": index}, name)
    loaded.recsdk_configure(context=context())
    loaded.recsdk_load_state(state=state, dataset=InteractionDataset.from_vocabulary(
        ds.vocabulary_state()), artifacts=registry.reader(run, f"plugin:{name}"))
    candidates = all_items(ds)
    users = list(ds.user_ids)
    assert np.array_equal(plugin.recsdk_score_users(user_ids=users, candidates=candidates),
                          loaded.recsdk_score_users(user_ids=users, candidates=candidates))
    late = request("a0", ["i1", "i12"], [0.0, 30 * DAY])
    assert np.array_equal(plugin.recsdk_score(request=late, candidates=candidates),
                          loaded.recsdk_score(request=late, candidates=candidates))
    got = loaded.recsdk_retrieve_candidates(request=late, n=5)
    if index == "none":
        assert got is None
    else:
        assert got == plugin.recsdk_retrieve_candidates(request=late, n=5)
        assert len(got.ids) == 5 and got.scores == sorted(got.scores, reverse=True)


def test_als_fold_in_is_implicits_recalculate_user():
    from implicit.cpu.als import AlternatingLeastSquares

    ds = planted_dataset()
    plugin = fitted("als", ds)
    model = AlternatingLeastSquares(factors=4, regularization=1.0, alpha=5.0)
    model.item_factors = plugin.item_factors_
    rows = plugin.rows_.matrix[:4]
    expected = model.recalculate_user(np.arange(4), rows)
    assert np.allclose(als_fold_in(rows, plugin.item_factors_, 1.0, 5.0), expected, atol=1e-4)
    # the plugin's own path, with the Y'Y it keeps from training, solves the same system
    assert np.allclose(plugin.fold_in_batch(rows), expected, atol=1e-4)


def test_a_return_counts_against_and_types_can_be_filtered():
    events = pd.DataFrame({"user_id": ["u", "u", "v", "v"], "item_id": ["x", "x", "x", "y"],
                           "type": ["purchase", "return", "purchase", "view"],
                           "timestamp": [0.0, DAY, 0.0, DAY]})
    ds = InteractionDataset.from_frame(events, event_weights=WEIGHTS)
    plugin = fitted("als", ds)
    assert plugin.rows_.matrix[ds.user_index["u"]].nnz == 0
    with pytest.raises(ConfigurationError, match=r"plugins\.bpr: .*add_to_cart"):
        fitted("bpr", ds, event_types=["add_to_cart"])


@pytest.mark.parametrize(("cls", "params", "field"), [
    (ALS, {"factors": 0}, "factors"),
    (ALS, {"alpha": -1}, "alpha"),
    (BPR, {"learning_rate": 0}, "learning_rate"),
    (BPR, {"index": "ivf"}, "index"),
    (BPR, {"hnsw_ef_growth": 1.5}, "hnsw_ef_growth"),
    (BPR, {"solver": "sgd"}, "solver"),
    (BPR, {"batch_size": 0}, "batch_size"),
    (ALS, {"num_threads": -2}, "num_threads"),
    (ALS, {"factor": 3}, "factor"),
])
def test_bad_parameters_name_the_parameter_and_range(cls, params, field):
    with pytest.raises(ConfigurationError, match=rf"plugins\.mf: .*{field}"):
        cls.from_config(params, "mf")


def test_gpu_only_when_implicit_has_cuda_and_the_device_is_cuda():
    import implicit.gpu

    assert use_gpu("cpu") is False
    assert use_gpu("cuda") is bool(implicit.gpu.HAS_CUDA)


def test_seeds_make_training_reproducible():
    a, b = fitted("bpr"), fitted("bpr")
    assert np.array_equal(a.item_factors_, b.item_factors_)


def test_the_adam_solver_is_deterministic_for_a_seed():
    a, b = fitted("bpr_adam"), fitted("bpr_adam")
    assert np.array_equal(a.item_factors_, b.item_factors_)
    assert np.array_equal(a.user_factors_, b.user_factors_)
    other = BPR.from_config(FAST["bpr_adam"], "bpr")
    ctx = context(seed=4)
    other.recsdk_configure(context=ctx)
    other.recsdk_fit(dataset=planted_dataset(), context=ctx)
    assert not np.allclose(a.item_factors_, other.item_factors_)


def test_each_solver_has_its_own_defaults_and_implicit_keeps_its_old_ones():
    implicit_model = BPR.from_config({"solver": "implicit"}, "bpr").make_model(False, 0)
    assert (implicit_model.factors, implicit_model.iterations) == (128, 100)
    assert implicit_model.learning_rate == pytest.approx(0.01)
    assert implicit_model.regularization == pytest.approx(0.03)
    adam = BPR.from_config({}, "bpr")
    assert adam.params["solver"] == "adam" and adam.params["batch_size"] == 2048
    assert [adam.hyper(k) for k in ("factors", "iterations")] == [64, 300]
    assert BPR.from_config({"factors": 8}, "bpr").hyper("factors") == 8


def test_the_adam_solver_keeps_implicits_layout_and_can_drop_the_bias():
    plugin = fitted("bpr_adam")
    assert plugin.user_factors_.shape[1] == plugin.item_factors_.shape[1] == 5
    assert np.all(plugin.user_factors_[:, -1] == 1.0)
    assert plugin.item_factors_[:, -1].any()
    assert not fitted("bpr_adam", item_bias=False).item_factors_[:, -1].any()


@pytest.mark.parametrize("name", ["bpr", "bpr_adam", "lmf"])
def test_refit_users_puts_each_user_at_the_fold_in_optimum(name):
    ds = planted_dataset()
    plain, refit = fitted(name, ds), fitted(name, ds, refit_users=True)
    assert np.array_equal(plain.item_factors_, refit.item_factors_)
    assert not np.allclose(plain.user_factors_, refit.user_factors_)
    row = refit.rows_.matrix[0]
    assert np.allclose(refit.user_factors_[0], refit.fold_in(row), atol=1e-5)


def test_a_run_without_an_index_file_builds_one_at_load(registry, caplog):
    ds = planted_dataset()
    plugin = fitted("als", ds, index="none")
    run = registry.begin_run("cfg", ["als"])
    state = plugin.recsdk_save_state(artifacts=registry.writer(run, "plugin:als"))
    loaded = CLASSES["als"].from_config({**FAST["als"], "index": "hnsw"}, "als")
    loaded.recsdk_configure(context=context())
    loaded.recsdk_load_state(state=state, dataset=InteractionDataset.from_vocabulary(
        ds.vocabulary_state()), artifacts=registry.reader(run, "plugin:als"))
    assert "no usable HNSW index" in caplog.text
    got = loaded.recsdk_retrieve_candidates(request=request("a0", []), n=3)
    assert got.ids == EmbeddingRetriever(ds.item_ids, plugin.item_factors_).retrieve(
        plugin.user_factors_[ds.user_index["a0"]], 3).ids


def test_on_the_gpu_als_scales_the_matrix_by_alpha_itself() -> None:
    """implicit's CUDA ALS ignores alpha in fit; the plugin scales the matrix instead."""
    als = ALS.from_config({"alpha": 8.0})
    matrix = sp.csr_matrix(np.array([[1.0, 0.0], [0.0, 2.0]], dtype=np.float32))
    assert als.confidence(matrix, gpu=False) is matrix
    np.testing.assert_array_equal(als.confidence(matrix, gpu=True).toarray(),
                                  [[8.0, 0.0], [0.0, 16.0]])


def test_one_request_folds_in_once_and_scores_retrieved_candidates_alike(monkeypatch):
    """Retrieval and scoring of one request share the user's vector; a few retrieved
    candidates are scored from their rows alone, equal to the full product's."""
    ds = planted_dataset()
    plugin = fitted("als", ds, index="exact")
    late = request("a0", ["i1", "i12"], [0.0, 30 * DAY])
    calls = []
    fold_in = plugin.fold_in
    monkeypatch.setattr(plugin, "fold_in", lambda row: calls.append(1) or fold_in(row))
    got = plugin.recsdk_retrieve_candidates(request=late, n=3)
    codes = np.array([ds.item_index[i] for i in got.ids] + [-1])
    few = CandidateSet(np.array([*got.ids, "new"], dtype=object), codes)
    scores = plugin.recsdk_score(request=late, candidates=few)
    assert len(calls) == 1
    assert np.allclose(scores[:3], got.scores, rtol=1e-5) and np.isnan(scores[3])
    full = plugin.recsdk_score(request=late, candidates=all_items(ds))
    assert np.allclose(scores[:3], full[codes[:3]], rtol=1e-5)
    # another request (its own id) folds in again: nothing leaks between requests
    plugin.recsdk_score(request=request("a0", ["i1", "i12"], [0.0, 30 * DAY]),
                        candidates=few)
    assert len(calls) == 2


def test_the_adam_solvers_positive_lookup_agrees_with_and_without_a_bitmap(monkeypatch):
    from recsdk_plugins.factorization.adam_bpr import _Positives

    rng = np.random.default_rng(0)
    users, items = rng.integers(0, 50, 300), rng.integers(0, 40, 300)
    queries = rng.integers(0, 50, 1000), rng.integers(0, 40, 1000)
    bitmap = _Positives(users, items, 50, 40)
    monkeypatch.setattr(_Positives, "BITMAP_MAX_CELLS", 0)
    search = _Positives(users, items, 50, 40)
    assert bitmap.bitmap is not None and search.bitmap is None
    expected = np.isin(queries[0] * 40 + queries[1], users * 40 + items)
    assert np.array_equal(bitmap.has(*queries), expected)
    assert np.array_equal(search.has(*queries), expected)
    assert expected.any() and not expected.all()
