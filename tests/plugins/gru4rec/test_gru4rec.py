"""GRU4Rec on sasrec's planted item chains, walked one after another: next-item order
beyond popularity, serving from the history, the window, padding, state round trips and
errors. The sequence machinery itself (windows, leave-last-out) is shared and tested
with sasrec."""

from __future__ import annotations

import configparser
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from recsdk_plugins.gru4rec import GRU4Rec
from recsdk_plugins.gru4rec.model import Architecture, build_network
from recsdk_plugins.sequential import padded

from recsdk.dataset import InteractionDataset
from recsdk.errors import ConfigurationError
from recsdk.registry import ModelRegistry
from recsdk.storage import models
from recsdk.storage.database import make_engine
from recsdk.types import CandidateSet, UserHistory
from tests.plugins.sasrec.test_sasrec import (
    CHAINS,
    SUCCESSOR,
    WEIGHTS,
    all_items,
    context,
    request,
    top,
)

FAST = {"dim": 16, "layers": 1, "max_len": 8, "dropout": 0.0, "learning_rate": 0.02,
        "batch_size": 64, "max_epochs": 60, "validation_share": 0.0, "num_threads": 1}


def chain_events(n_users: int = 80, seed: int = 0) -> pd.DataFrame:
    """Each user views "hot" (and sometimes returns an item), then walks two or three
    chains one after another, each from a random start to its end, one event a minute.

    Unlike sasrec's users, who walk one chain, these switch chains: inside a chain the
    next item is fixed by the last one, and a recurrent state has to learn to let go of
    the chain before (a GRU trained on single walks carries it over to the next)."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        t = 1000.0 * u
        events = [("hot", "view")]
        for _ in range(int(rng.integers(2, 4))):
            chain = CHAINS[rng.integers(len(CHAINS))]
            start = int(rng.integers(0, 3))
            events += [(i, "view") for i in chain[start:]]
        if rng.random() < 0.3:
            events.insert(1, (CHAINS[0][4], "return"))  # negative weight: not in sequences
        for item, kind in events:
            rows.append((f"u{u}", item, kind, t))
            t += 60.0
    return pd.DataFrame(rows, columns=["user_id", "item_id", "type", "timestamp"])


def fit(dataset: InteractionDataset, seed: int = 5, **params: Any) -> GRU4Rec:
    plugin = GRU4Rec.from_config({**FAST, **params}, "gru4rec")
    ctx = context(seed)
    plugin.recsdk_configure(context=ctx)
    plugin.recsdk_fit(dataset=dataset, context=ctx)
    return plugin


@pytest.fixture(scope="module")
def dataset() -> InteractionDataset:
    return InteractionDataset.from_frame(chain_events(), event_weights=WEIGHTS)


@pytest.fixture(scope="module")
def model(dataset: InteractionDataset) -> GRU4Rec:
    return fit(dataset)


def test_learns_the_chains_beyond_popularity(model: GRU4Rec, dataset: InteractionDataset):
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


def test_after_a_switch_of_chains_the_new_chain_is_followed(model: GRU4Rec,
                                                          dataset: InteractionDataset):
    """The state lets go of the chain before: the same items lead to the other chain's
    successor when the walks come in the other order."""
    candidates = all_items(dataset)
    first = ["hot", "c0i2", "c0i3", "c0i4", "c2i1"]
    second = ["hot", "c2i2", "c2i3", "c2i4", "c0i1"]
    for walk in (first, second):
        scores = model.recsdk_score(request=request("stranger", walk), candidates=candidates)
        assert top(scores, dataset, tuple(walk)) == SUCCESSOR[walk[-1]]


def test_the_next_list_follows_the_last_click(model: GRU4Rec, dataset: InteractionDataset):
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
        model: GRU4Rec, dataset: InteractionDataset):
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


def test_left_padding_leaves_the_state_at_zero():
    """A short sequence scores the same padded to any window: the bias-free GRU stays
    at zero over the padding, so the first real item meets a zero state."""
    import torch

    torch.manual_seed(0)
    net = build_network(Architecture(n_items=9, dim=8, layers=2, max_len=12,
                                     dropout=0.0)).eval()
    seq = [np.array([3, 1, 4])]
    with torch.no_grad():
        short = net.hidden(torch.from_numpy(padded(seq, 3)))[:, -1]
        long = net.hidden(torch.from_numpy(padded(seq, 12)))
    np.testing.assert_allclose(long[0, :9].numpy(), 0.0)
    np.testing.assert_allclose(long[:, -1].numpy(), short.numpy(), rtol=1e-5, atol=1e-6)


def test_unseen_users_unknown_items_and_empty_histories(model: GRU4Rec,
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


def test_negative_event_types_stay_out_of_the_sequences(model: GRU4Rec,
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
    params = {"max_epochs": 3, "dropout": 0.3, "layers": 2}
    users = list(dataset.user_ids)
    a = fit(dataset, 1, **params).recsdk_score_users(user_ids=users,
                                                     candidates=all_items(dataset))
    b = fit(dataset, 1, **params).recsdk_score_users(user_ids=users,
                                                     candidates=all_items(dataset))
    c = fit(dataset, 2, **params).recsdk_score_users(user_ids=users,
                                                     candidates=all_items(dataset))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_early_stopping_on_leave_last_out_and_the_binary_loss(dataset: InteractionDataset):
    plugin = fit(dataset, validation_share=1.0, max_epochs=4, eval_every=2, patience=1,
                 loss="bce", refit=True)
    report = plugin.report_
    assert report.name == "gru4rec" and report.device == "cpu"
    assert [e for e, _ in report.history] == [2, 4] or report.stopped_early
    assert report.best_score is not None and report.best_epoch in (2, 4)
    assert report.seconds_per_epoch > 0


@pytest.fixture
def registry(tmp_path) -> Iterator[ModelRegistry]:
    engine = make_engine(f"sqlite:///{tmp_path / 'runs.db'}")
    models.Base.metadata.create_all(engine)
    yield ModelRegistry(engine, tmp_path / "artifacts", inline_max_bytes=1 << 20)
    engine.dispose()


def test_state_round_trip_through_the_registry_gives_identical_scores(
        model: GRU4Rec, dataset: InteractionDataset, registry: ModelRegistry):
    run = registry.begin_run("cfg", ["gru4rec"])
    state = model.recsdk_save_state(artifacts=registry.writer(run, "plugin:gru4rec"))
    assert all(isinstance(v, np.ndarray) and v.dtype != object for v in state.values())
    loaded = GRU4Rec.from_config({**FAST, "dim": 8, "layers": 2}, "gru4rec")  # saved wins
    loaded.recsdk_configure(context=context())
    loaded.recsdk_load_state(state=state, dataset=InteractionDataset.from_vocabulary(
        dataset.vocabulary_state()), artifacts=registry.reader(run, "plugin:gru4rec"))
    assert loaded.arch_ == model.arch_
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


def test_a_saved_model_for_another_vocabulary_is_refused(
        model: GRU4Rec, dataset: InteractionDataset, registry: ModelRegistry):
    run = registry.begin_run("cfg", ["gru4rec"])
    state = model.recsdk_save_state(artifacts=registry.writer(run, "plugin:gru4rec"))
    other = InteractionDataset.from_frame(chain_events(20, seed=1).query("item_id != 'hot'"),
                                          event_weights=WEIGHTS)
    loaded = GRU4Rec.from_config(FAST, "gru4rec")
    with pytest.raises(ConfigurationError, match=r"plugins\.gru4rec: saved model has"):
        loaded.recsdk_load_state(state=state, dataset=other,
                                 artifacts=registry.reader(run, "plugin:gru4rec"))


@pytest.mark.parametrize(("params", "name"), [
    ({"dim": 2}, "dim"), ({"layers": 0}, "layers"), ({"layers": 5}, "layers"),
    ({"max_len": 1}, "max_len"), ({"loss": "bpr-max"}, "loss"),
    ({"dropout": 0.95}, "dropout"), ({"learning_rate": 0}, "learning_rate"),
    ({"validation_share": 1.5}, "validation_share"), ({"heads": 2}, "heads")])
def test_bad_parameters_are_refused_by_name(params: dict[str, Any], name: str):
    with pytest.raises(ConfigurationError, match=rf"plugins\.gru4rec: invalid .*'{name}'"):
        GRU4Rec.from_config(params, "gru4rec")


def test_missing_torch_names_the_extra(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    plugin = GRU4Rec.from_config({}, "gru4rec")
    with pytest.raises(ConfigurationError, match=r"plugins\.gru4rec .*recsdk\[torch\]"):
        plugin.recsdk_configure(context=context())


def test_no_usable_events_names_the_plugin(dataset: InteractionDataset):
    with pytest.raises(ConfigurationError, match=r"plugins\.gru4rec: no interaction"):
        fit(dataset, event_types=["purchase"])


def test_registered_as_an_entry_point():
    setup = configparser.ConfigParser()
    setup.read(Path(__file__).parents[3] / "setup.cfg")
    entry_points = [line.strip() for line in setup["options.entry_points"]["recsdk"].split("\n")]
    assert "gru4rec = recsdk_plugins.gru4rec:GRU4Rec" in entry_points
