"""SASRec on planted item chains: next-item order beyond popularity, serving from the
history, the window, state round trips and errors (the behaviour every sequential
plugin shares is in :mod:`tests.plugins.sequential_contract`, run here on SASRec)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from recsdk_plugins.sasrec import SASRec, leave_last_out
from recsdk_plugins.sasrec.model import training_windows, user_sequences

from recsdk.dataset import InteractionDataset
from recsdk.errors import ConfigurationError

# the behaviour every sequential plugin shares, collected here and run on SASRec through
# this module's fixtures (plugin_cls, fast, seed_params, other_arch, dataset) and the
# contract's fit and model built from them
from tests.plugins.sequential_contract import *  # noqa: F403
from tests.plugins.sequential_contract import CHAINS, WEIGHTS, Fit

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


@pytest.fixture(scope="module")
def plugin_cls() -> type[SASRec]:
    return SASRec


@pytest.fixture(scope="module")
def fast() -> dict[str, Any]:
    return FAST


@pytest.fixture(scope="module")
def seed_params() -> dict[str, Any]:
    return {"max_epochs": 3}


@pytest.fixture(scope="module")
def other_arch() -> dict[str, Any]:
    return {"dim": 8}


@pytest.fixture(scope="module")
def dataset() -> InteractionDataset:
    return InteractionDataset.from_frame(chain_events(), event_weights=WEIGHTS)


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


def test_leave_last_out_validation_holds_out_last_training_items(dataset: InteractionDataset,
                                                                 fit: Fit):
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
