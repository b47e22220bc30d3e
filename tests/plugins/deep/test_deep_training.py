"""The training infrastructure every deep plugin shares (plugins/deep_training.py)."""

from __future__ import annotations

import builtins
import math

import numpy as np
import pytest
import scipy.sparse as sp
from recsdk_plugins import deep_training as dt

from recsdk.errors import ConfigurationError

torch = pytest.importorskip("torch")


def interactions(users: int = 60, items: int = 40, density: float = 0.25,
                 seed: int = 0) -> sp.csr_matrix:
    m = sp.random(users, items, density=density, format="csr", random_state=seed,
                  dtype=np.float32)
    m.data[:] = 1.0
    return m


def test_validation_split_partitions_each_users_row() -> None:
    m = interactions()
    train, valid = dt.validation_split(m, 0.2, seed=7)
    assert (train + valid != m).nnz == 0
    assert train.multiply(valid).nnz == 0
    counts, held = np.diff(m.indptr), np.diff(valid.indptr)
    assert np.all(np.diff(train.indptr)[counts > 0] >= 1)  # everyone keeps one to learn
    assert np.all(np.abs(held - counts * 0.2) < 1 + 1e-9)
    assert 0.15 < valid.nnz / m.nnz < 0.25


def test_validation_split_is_seeded() -> None:
    m = interactions()
    a, b, c = (dt.validation_split(m, 0.2, seed=s)[1] for s in (1, 1, 2))
    assert (a != b).nnz == 0
    assert (a != c).nnz > 0


def test_validation_split_with_no_share_holds_nothing_out() -> None:
    m = interactions()
    train, valid = dt.validation_split(m, 0.0, seed=1)
    assert valid.nnz == 0 and (train != m).nnz == 0


def test_ndcg_at_k_against_hand_computed_values() -> None:
    truth = sp.csr_matrix(np.array([[0, 1, 0, 1], [1, 0, 0, 0], [0, 0, 0, 0]], np.float32))
    scores = np.array([[4.0, 3.0, 2.0, 1.0],   # hits at ranks 2 and 4
                       [4.0, 3.0, 2.0, 1.0],   # hit at rank 1
                       [1.0, 2.0, 3.0, 4.0]])  # no relevant item: not counted
    first = (1 / math.log2(3) + 1 / math.log2(5)) / (1 + 1 / math.log2(3))
    assert dt.ndcg_at_k(scores, truth, k=4) == pytest.approx((first + 1.0) / 2)
    assert dt.ndcg_at_k(scores, truth, k=1) == pytest.approx(0.5)


def test_masked_scores_filters_seen_items() -> None:
    seen = sp.csr_matrix(np.array([[1, 0], [0, 1]], np.float32))
    out = dt.masked_scores(np.ones((2, 2)), seen)
    assert np.isneginf(out[0, 0]) and np.isneginf(out[1, 1]) and out[0, 1] == 1.0


def test_early_stopping_keeps_the_best_state_and_stops() -> None:
    model = torch.nn.Linear(1, 1, bias=False)
    validations = iter([0.1, 0.5, 0.3, 0.2, 0.2, 0.9])

    def train_epoch(epoch: int) -> float:
        with torch.no_grad():
            model.weight.fill_(float(epoch))
        return 1.0 / epoch

    report = dt.fit_with_early_stopping(
        model, train_epoch, lambda: next(validations), name="toy", device="cpu",
        max_epochs=50, eval_every=2, patience=3)
    assert report.stopped_early and report.epochs == 10
    assert report.best_epoch == 4 and report.best_score == 0.5
    assert model.weight.item() == 4.0  # the state of the best epoch, not the last
    assert len(report.epoch_seconds) == 10 and report.seconds_per_epoch >= 0
    assert report.as_dict()["history"] == [[2, 0.1], [4, 0.5], [6, 0.3], [8, 0.2], [10, 0.2]]


def test_without_validation_all_epochs_run_and_the_last_state_stays() -> None:
    model = torch.nn.Linear(1, 1, bias=False)

    def train_epoch(epoch: int) -> float:
        with torch.no_grad():
            model.weight.fill_(float(epoch))
        return 0.5

    report = dt.fit_with_early_stopping(model, train_epoch, None, name="toy",
                                        device="cpu", max_epochs=7)
    assert report.epochs == report.best_epoch == 7 and not report.stopped_early
    assert model.weight.item() == 7.0


def test_a_diverging_loss_stops_training_with_advice() -> None:
    model = torch.nn.Linear(1, 1)
    with pytest.raises(FloatingPointError, match=r"toy.*nan.*epoch 1.*learning rate"):
        dt.fit_with_early_stopping(model, lambda e: float("nan"), None, name="toy",
                                   device="cpu", max_epochs=3)


def test_seed_everything_repeats_torch_draws() -> None:
    dt.seed_everything(5)
    a = torch.rand(3)
    dt.seed_everything(5)
    assert torch.equal(a, torch.rand(3))


def test_autocast_is_a_no_op_on_the_cpu() -> None:
    with dt.autocast("cpu"):
        assert (torch.ones(2) * 2).dtype == torch.float32


def test_missing_torch_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def no_torch(name: str, *args: object, **kwargs: object) -> object:
        if name == "torch" or name.startswith("torch."):
            raise ImportError("No module named 'torch'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_torch)
    with pytest.raises(ConfigurationError, match=r"plugins\.lightgcn.*recsdk\[torch\]"):
        dt.require_torch("lightgcn")
