"""SASRec on planted item chains: next-item order beyond popularity, serving from the
history, the window, state round trips and errors."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest
from recsdk_plugins.sasrec import SASRec, leave_last_out
from recsdk_plugins.sasrec.model import training_windows, user_sequences

from recsdk.config import Settings
from recsdk.dataset import InteractionDataset
from recsdk.errors import ConfigurationError
from recsdk.registry import ModelRegistry
from recsdk.storage import models
from recsdk.storage.database import make_engine
from recsdk.types import CandidateSet, PluginContext, RecommendationRequest, UserHistory

WEIGHTS = {"view": 1.0, "return": -4.0}
#: 4 chains of 5 items: c0 -> c1 -> ... -> c4; "hot" starts most sequences (popular)
CHAINS = [[f"c{c}i{j}" for j in range(5)] for c in range(4)]
SUCCESSOR = {chain[j]: chain[j + 1] for chain in CHAINS for j in range(4)}
FAST = {"dim": 16, "blocks": 1, "heads": 1, "max_len": 6, "dropout": 0.0,
        "learning_rate": 0.02, "batch_size": 64, "max_epochs": 60, "validation_share": 0.0,
        "num_threads": 1}


def chain_events(n_users: int = 80, seed: int = 0) -> pd.DataFrame:
    """Each user views "hot" (and sometimes a return) then walks a chain from a random
    start for 2-5 steps, one event a minute."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        chain = CHAINS[rng.integers(len(CHAINS))]
        start = int(rng.integers(0, 3))
        walk = chain[start:start + int(rng.integers(2, 6))]
        t = 1000.0 * u
        events = [("hot", "view")] + [(i, "view") for i in walk]
        if rng.random() < 0.3:
            events.insert(1, (chain[4], "return"))  # negative weight: not in the sequence
        for item, kind in events:
            rows.append((f"u{u}", item, kind, t))
            t += 60.0
    return pd.DataFrame(rows, columns=["user_id", "item_id", "type", "timestamp"])


def context(seed: int = 5) -> PluginContext:
    return PluginContext(settings=Settings(seed=seed, device="cpu", event_weights=WEIGHTS),
                         seed=seed, device_setting="cpu")


def fit(dataset: InteractionDataset, seed: int = 5, **params: Any) -> SASRec:
    plugin = SASRec.from_config({**FAST, **params}, "sasrec")
    ctx = context(seed)
    plugin.recsdk_configure(context=ctx)
    plugin.recsdk_fit(dataset=dataset, context=ctx)
    return plugin


@pytest.fixture(scope="module")
def dataset() -> InteractionDataset:
    return InteractionDataset.from_frame(chain_events(), event_weights=WEIGHTS)


@pytest.fixture(scope="module")
def model(dataset: InteractionDataset) -> SASRec:
    return fit(dataset)


def all_items(ds: InteractionDataset) -> CandidateSet:
    return CandidateSet(ds.item_ids, np.arange(ds.n_items))


def top(scores: np.ndarray, ds: InteractionDataset, exclude: tuple[str, ...] = ()) -> str:
    s = np.where(np.isin(ds.item_ids, exclude), -np.inf, np.nan_to_num(scores, nan=-np.inf))
    return str(ds.item_ids[int(np.argmax(s))])


def request(user: str | None, items: list[str], times: list[float] | None = None,
            ) -> RecommendationRequest:
    history = UserHistory(items, ["view"] * len(items), times or [])
    return RecommendationRequest(user, k=5, history=history)


def test_learns_the_chains_beyond_popularity(model: SASRec, dataset: InteractionDataset):
    candidates = all_items(dataset)
    pop = dataset.matrix.sum(axis=0).A1
    assert dataset.item_ids[np.argmax(pop)] == "hot"
    right = 0
    for item, nxt in SUCCESSOR.items():
        similar = model.recsdk_score_similar(item_id=item, candidates=candidates, catalog=None)
        after = model.recsdk_score(request=request("stranger", ["hot", item]),
                                   candidates=candidates)
        right += top(similar, dataset, (item,)) == nxt
        right += top(after, dataset, ("hot", item)) == nxt
    # popularity would answer "hot" (or one most-viewed chain item) for every item
    assert right >= 0.9 * 2 * len(SUCCESSOR)


def test_the_next_list_follows_the_last_click(model: SASRec, dataset: InteractionDataset):
    candidates = all_items(dataset)
    user = "u0"
    end = float(dataset.interactions["timestamp"].max())
    before = model.recsdk_score(request=request(user, []), candidates=candidates)
    batch = model.recsdk_score_users(user_ids=[user], candidates=candidates)[0]
    np.testing.assert_allclose(before, batch, rtol=1e-5)
    for item in ("c2i1", "c3i2"):
        after = model.recsdk_score(request=request(user, [item], [end + 60.0]),
                                   candidates=candidates)
        assert top(after, dataset, (item, "hot")) == SUCCESSOR[item]
        assert after[dataset.item_index[SUCCESSOR[item]]] > before[
            dataset.item_index[SUCCESSOR[item]]]
    # an event no newer than the training data is already in the training sequence
    old = model.recsdk_score(request=request(user, ["c2i1"], [0.0]), candidates=candidates)
    np.testing.assert_array_equal(old, before)


def test_a_history_longer_than_the_window_is_cut_to_its_newest_items(
        model: SASRec, dataset: InteractionDataset):
    candidates = all_items(dataset)
    long = [i for chain in CHAINS for i in chain] + ["c1i0", "c1i1", "c1i2"]
    assert len(long) > FAST["max_len"]
    seq = model.request_sequence("stranger", UserHistory(long, ["view"] * len(long)))
    assert len(seq) == FAST["max_len"]
    assert [dataset.item_ids[c] for c in seq] == long[-FAST["max_len"]:]
    full = model.recsdk_score(request=request("stranger", long), candidates=candidates)
    tail = model.recsdk_score(request=request("stranger", long[-FAST["max_len"]:]),
                              candidates=candidates)
    np.testing.assert_array_equal(full, tail)
    assert top(full, dataset, tuple(long[-3:])) == "c1i3"


def test_windows_cover_every_step_of_a_long_sequence():
    items = np.arange(13)
    indptr, seq = user_sequences(np.zeros(13, dtype=np.int64), items, np.zeros(13), 1)
    np.testing.assert_array_equal(seq, items)  # ties keep the input order
    for offset in (0, 2):
        x, y = training_windows(indptr, seq, 5, offset)
        pairs = {(int(a) - 1, int(b)) for xr, yr in zip(x, y, strict=True)
                 for a, b in zip(xr, yr, strict=True) if b >= 0}
        assert pairs == {(i, i + 1) for i in range(12)}
        assert ((x == 0) == (y < 0)).all()


def test_unseen_users_unknown_items_and_empty_histories(model: SASRec,
                                                        dataset: InteractionDataset):
    candidates = CandidateSet(np.array(["c0i2", "brand-new"], dtype=object),
                              np.array([dataset.item_index["c0i2"], -1]))
    got = model.recsdk_score(request=request("stranger", ["c0i1"]), candidates=candidates)
    assert np.isfinite(got[0]) and np.isnan(got[1])
    assert model.recsdk_score(request=request("stranger", []), candidates=candidates) is None
    assert model.recsdk_score(request=request("stranger", ["never-seen"]),
                              candidates=candidates) is None
    scores = model.recsdk_score_users(user_ids=["u1", "stranger"], candidates=candidates)
    assert np.isfinite(scores[0, 0]) and np.isnan(scores[0, 1]) and np.isnan(scores[1]).all()
    assert model.recsdk_score_similar(item_id="brand-new", candidates=candidates,
                                      catalog=None) is None


def test_negative_event_types_stay_out_of_the_sequences(model: SASRec,
                                                        dataset: InteractionDataset):
    inter = dataset.interactions
    returned = inter.loc[inter["type"] == "return", "user"].unique()
    assert len(returned) > 0
    for code in returned[:5]:
        user = dataset.user_ids[code]
        views = inter[(inter["user"] == code) & (inter["type"] == "view")]
        np.testing.assert_array_equal(model.training_sequence(user),
                                      views["item"].to_numpy()[-FAST["max_len"]:])


def test_same_seed_same_model_other_seed_other_model(dataset: InteractionDataset):
    params = {"max_epochs": 3}
    users = list(dataset.user_ids)
    a = fit(dataset, 1, **params).recsdk_score_users(user_ids=users,
                                                     candidates=all_items(dataset))
    b = fit(dataset, 1, **params).recsdk_score_users(user_ids=users,
                                                     candidates=all_items(dataset))
    c = fit(dataset, 2, **params).recsdk_score_users(user_ids=users,
                                                     candidates=all_items(dataset))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_leave_last_out_validation_holds_out_last_training_items(dataset: InteractionDataset):
    indptr = np.array([0, 3, 4, 8])
    seq = np.array([5, 6, 7, 1, 2, 3, 4, 9])
    ptr, rest, users, held = leave_last_out(indptr, seq, 1.0, seed=0)
    np.testing.assert_array_equal(users, [0, 2])  # user 1 has one item: kept whole
    np.testing.assert_array_equal(held, [7, 9])
    np.testing.assert_array_equal(ptr, [0, 2, 3, 6])
    np.testing.assert_array_equal(rest, [5, 6, 1, 2, 3, 4])
    plugin = fit(dataset, validation_share=1.0, max_epochs=4, eval_every=2, patience=1,
                 loss="bce")
    report = plugin.report_
    assert [e for e, _ in report.history] == [2, 4] or report.stopped_early
    assert report.best_score is not None and report.best_epoch in (2, 4)


@pytest.fixture
def registry(tmp_path) -> Iterator[ModelRegistry]:
    engine = make_engine(f"sqlite:///{tmp_path / 'runs.db'}")
    models.Base.metadata.create_all(engine)
    yield ModelRegistry(engine, tmp_path / "artifacts", inline_max_bytes=1 << 20)
    engine.dispose()


def test_state_round_trip_through_the_registry_gives_identical_scores(
        model: SASRec, dataset: InteractionDataset, registry: ModelRegistry):
    run = registry.begin_run("cfg", ["sasrec"])
    state = model.recsdk_save_state(artifacts=registry.writer(run, "plugin:sasrec"))
    assert all(isinstance(v, np.ndarray) and v.dtype != object for v in state.values())
    loaded = SASRec.from_config({**FAST, "dim": 8}, "sasrec")  # saved shape wins
    loaded.recsdk_configure(context=context())
    loaded.recsdk_load_state(state=state, dataset=InteractionDataset.from_vocabulary(
        dataset.vocabulary_state()), artifacts=registry.reader(run, "plugin:sasrec"))
    candidates = all_items(dataset)
    users = [*list(dataset.user_ids), "stranger"]
    np.testing.assert_array_equal(model.recsdk_score_users(user_ids=users, candidates=candidates),
                                  loaded.recsdk_score_users(user_ids=users,
                                                            candidates=candidates))
    late = request("u3", ["c1i1", "c1i2"], [1e9, 1e9 + 1])
    np.testing.assert_array_equal(model.recsdk_score(request=late, candidates=candidates),
                                  loaded.recsdk_score(request=late, candidates=candidates))
    np.testing.assert_array_equal(
        model.recsdk_score_similar(item_id="c0i0", candidates=candidates, catalog=None),
        loaded.recsdk_score_similar(item_id="c0i0", candidates=candidates, catalog=None))


@pytest.mark.parametrize(("params", "name"), [
    ({"dim": 2}, "dim"), ({"max_len": 1}, "max_len"), ({"loss": "hinge"}, "loss"),
    ({"dropout": 0.95}, "dropout"), ({"validation_share": 1.5}, "validation_share"),
    ({"window": 5}, "window")])
def test_bad_parameters_are_refused_by_name(params: dict[str, Any], name: str):
    with pytest.raises(ConfigurationError, match=rf"plugins\.sasrec: invalid .*'{name}'"):
        SASRec.from_config(params, "sasrec")


def test_heads_must_divide_dim():
    with pytest.raises(ConfigurationError, match=r"plugins\.sasrec: .*dim = 30 .*heads = 4"):
        SASRec.from_config({"dim": 30, "heads": 4}, "sasrec")


def test_missing_torch_names_the_extra(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    plugin = SASRec.from_config({}, "sasrec")
    with pytest.raises(ConfigurationError, match=r"plugins\.sasrec .*recsdk\[torch\]"):
        plugin.recsdk_configure(context=context())


def test_no_usable_events_names_the_plugin(dataset: InteractionDataset):
    with pytest.raises(ConfigurationError, match=r"plugins\.sasrec: no interaction"):
        fit(dataset, event_types=["purchase"])
