"""GRU4Rec on the planted item chains, walked one after another: what every sequential
plugin must do (:mod:`tests.plugins.sequential_contract`), then what is GRU4Rec's own:
following a switch of chains, padding, its loss options, its parameters. The sequence
machinery itself (windows, leave-last-out) is tested with sasrec."""

from __future__ import annotations

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

# the behaviour every sequential plugin shares, collected here and run on GRU4Rec through
# this module's fixtures (plugin_cls, fast, seed_params, other_arch, dataset) and the
# contract's fit and model built from them
from tests.plugins.sequential_contract import *  # noqa: F403
from tests.plugins.sequential_contract import (
    CHAINS,
    SUCCESSOR,
    WEIGHTS,
    Fit,
    all_items,
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


@pytest.fixture(scope="module")
def plugin_cls() -> type[GRU4Rec]:
    return GRU4Rec


@pytest.fixture(scope="module")
def fast() -> dict[str, Any]:
    return FAST


@pytest.fixture(scope="module")
def seed_params() -> dict[str, Any]:
    return {"max_epochs": 3, "dropout": 0.3, "layers": 2}


@pytest.fixture(scope="module")
def other_arch() -> dict[str, Any]:
    return {"dim": 8, "layers": 2}


@pytest.fixture(scope="module")
def dataset() -> InteractionDataset:
    return InteractionDataset.from_frame(chain_events(), event_weights=WEIGHTS)


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


def test_early_stopping_on_leave_last_out_and_the_binary_loss(dataset: InteractionDataset,
                                                               fit: Fit):
    plugin = fit(dataset, validation_share=1.0, max_epochs=4, eval_every=2, patience=1,
                 loss="bce", refit=True)
    report = plugin.report_
    assert report.name == "gru4rec" and report.device == "cpu"
    assert [e for e, _ in report.history] == [2, 4] or report.stopped_early
    assert report.best_score is not None and report.best_epoch in (2, 4)
    assert report.seconds_per_epoch > 0


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
