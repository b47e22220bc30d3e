"""Training infrastructure shared by the deep (torch) plugins.

Every deep plugin trains the same way, so the rules live here once:

* torch is an optional extra: :func:`require_torch` stops a plugin that needs it with
  the extra to install (``pip install 'recsdk[torch]'``), at configure time, so a
  misconfigured server fails at startup rather than at its first request;
* the device comes from :attr:`recsdk.types.PluginContext.device` (CUDA when torch sees
  a GPU); on CUDA the forward pass runs under bf16 autocast (:func:`autocast`);
* :func:`seed_everything` seeds Python, numpy and torch (CPU and CUDA) from the run's
  seed, so two runs with one seed train the same model on the CPU;
* :func:`validation_split` carves a per-user holdout from the *training* data; early
  stopping (:func:`fit_with_early_stopping`) watches NDCG@k on it and keeps the best
  ``state_dict``: the test split is never looked at;
* a tqdm progress bar per run and seconds per epoch in the :class:`TrainingReport`,
  which plugins keep as ``report_`` and log;
* a plugin may validate, keep and serve an exponential moving average of its trained
  weights (:func:`update_average`, the ``ema_decay`` parameter of
  :func:`ema_decay_field`) instead of the last step's.

Nothing here downloads a model or data.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import random
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import scipy.sparse as sp
from marshmallow import Schema, fields, validate

from recsdk import Plugin, hookimpl
from recsdk.config import DEFAULT_EVENT_WEIGHTS
from recsdk.errors import ConfigurationError
from recsdk.interactions import Weighting
from recsdk.types import PluginContext

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

TORCH_EXTRA = "pip install 'recsdk[torch]'"


def require_torch(plugin: str) -> Any:
    """The torch module, or a :class:`ConfigurationError` naming the extra to install."""
    try:
        import torch
    except ImportError as exc:
        raise ConfigurationError(
            f"plugins.{plugin} needs PyTorch, which is not installed; install the torch "
            f"extra: {TORCH_EXTRA}") from exc
    return torch


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's generators (every device)."""
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def torch_generator(seed: int, device: str = "cpu") -> torch.Generator:
    """A seeded torch generator (for samplers and dropout masks drawn by hand)."""
    import torch

    return torch.Generator(device=device).manual_seed(int(seed))


def autocast(device: str) -> contextlib.AbstractContextManager[Any]:
    """bf16 mixed precision on CUDA; nothing on the CPU (where it is slower)."""
    if not str(device).startswith("cuda"):
        return contextlib.nullcontext()
    import torch

    return torch.autocast(device_type="cuda", dtype=torch.bfloat16)


def ema_decay_field(default: float) -> fields.Float:
    """The ``ema_decay`` parameter of a plugin that keeps a weight average."""
    return fields.Float(
        load_default=default,
        validate=validate.Range(min=0.0, max=1.0, max_inclusive=False),
        metadata={"description": "the network kept (validated, saved, served) is an "
                  "exponential moving average of the trained weights with this decay per "
                  "step (0: the trained weights themselves)"})


def update_average(average: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    """One step of the exponential moving average of ``model``'s weights kept in
    ``average`` (same architecture): ``average <- decay * average + (1 - decay) * model``.

    Averaging the last few hundred steps smooths the step-to-step noise of small
    batches, which on small data moves validation NDCG by more than most settings do.
    """
    import torch

    with torch.no_grad():
        for kept, current in zip(average.parameters(), model.parameters(), strict=True):
            kept.lerp_(current, 1.0 - decay)


def averaged_copy(model: torch.nn.Module, decay: float) -> torch.nn.Module:
    """The module that keeps ``model``'s weight average (a frozen copy), or ``model``
    itself when ``decay`` is 0 (no average)."""
    if decay <= 0:
        return model
    return copy.deepcopy(model).requires_grad_(False)


class DeepParams(Schema):
    """Training parameters every deep plugin offers (plugins inherit and add theirs)."""

    max_epochs = fields.Integer(
        load_default=200, validate=validate.Range(min=1, max=10_000),
        metadata={"description": "most training epochs; early stopping usually ends "
                  "training sooner"})
    eval_every = fields.Integer(
        load_default=5, validate=validate.Range(min=1, max=1000),
        metadata={"description": "epochs between two validations"})
    patience = fields.Integer(
        load_default=5, validate=validate.Range(min=0, max=1000),
        metadata={"description": "validations without improvement before training stops "
                  "(0: never stop early)"})
    validation_share = fields.Float(
        load_default=0.1, validate=validate.Range(min=0.0, max=0.5),
        metadata={"description": "share of each user's training interactions held out for "
                  "early stopping (0: train max_epochs with no validation)"})
    refit = fields.Boolean(
        load_default=True,
        metadata={"description": "after early stopping, train again on all the training "
                  "data for the best number of epochs (else keep the model trained "
                  "without the validation interactions)"})
    progress = fields.Boolean(
        load_default=False, metadata={"description": "show a progress bar while training"})


@dataclass
class TrainingReport:
    """What one training run did: epochs, the best validation score, time per epoch."""

    name: str
    device: str
    epochs: int = 0
    best_epoch: int = 0
    best_score: float | None = None
    #: (epoch, validation NDCG@k) pairs in order
    history: list[tuple[int, float]] = field(default_factory=list)
    epoch_seconds: list[float] = field(default_factory=list)
    stopped_early: bool = False

    @property
    def seconds_per_epoch(self) -> float:
        return float(np.mean(self.epoch_seconds)) if self.epoch_seconds else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "device": self.device, "epochs": self.epochs,
                "best_epoch": self.best_epoch, "best_score": self.best_score,
                "seconds_per_epoch": self.seconds_per_epoch,
                "stopped_early": self.stopped_early,
                "history": [list(h) for h in self.history]}


def validation_split(matrix: sp.csr_matrix, share: float, seed: int,
                     min_kept: int = 1) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Hold out ``share`` of each user's interactions (seeded): (train, validation).

    A user keeps at least ``min_kept`` interactions for training; users with too few
    interactions give none to validation. Both parts keep ``matrix``'s shape.
    """
    m = sp.csr_matrix(matrix)
    rng = np.random.default_rng(seed)
    counts = np.diff(m.indptr)
    held = np.minimum(np.floor(counts * share + rng.random(len(counts))).astype(np.int64),
                      np.maximum(counts - min_kept, 0))
    keys = rng.random(m.nnz)
    rows = np.repeat(np.arange(m.shape[0]), counts)
    # rank of each interaction inside its row by a random key: the first `held` go
    order = np.lexsort((keys, rows))
    rank = np.empty(m.nnz, dtype=np.int64)
    rank[order] = np.arange(m.nnz) - np.repeat(m.indptr[:-1], counts)
    to_validation = rank < held[rows]
    coo = m.tocoo()
    parts = []
    for mask in (~to_validation, to_validation):
        part = sp.csr_matrix((coo.data[mask], (coo.row[mask], coo.col[mask])), shape=m.shape)
        parts.append(part)
    return parts[0], parts[1]


def ndcg_at_k(scores: np.ndarray, truth: sp.csr_matrix, k: int = 10) -> float:
    """Mean NDCG@k over rows of ``truth`` with at least one relevant item.

    ``scores`` is users x items for the same rows (already masked: training items set
    to -inf by the caller).
    """
    truth = sp.csr_matrix(truth)
    n_rel = np.diff(truth.indptr)
    rows = np.flatnonzero(n_rel > 0)
    if len(rows) == 0:
        return 0.0
    s = np.asarray(scores)[rows]
    k = min(k, s.shape[1])
    top = np.argpartition(-s, k - 1, axis=1)[:, :k]
    order = np.take_along_axis(s, top, axis=1).argsort(axis=1)[:, ::-1]
    top = np.take_along_axis(top, order, axis=1)
    t = truth[rows]
    hits = np.asarray(t[np.arange(len(rows))[:, None], top].todense()) > 0
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = (hits * discounts).sum(axis=1)
    ideal = np.cumsum(discounts)[np.minimum(n_rel[rows], k) - 1]
    return float(np.mean(dcg / ideal))


def masked_scores(scores: np.ndarray, seen: sp.csr_matrix) -> np.ndarray:
    """``scores`` with each row's ``seen`` items set to -inf (training items filtered)."""
    out = np.array(scores, dtype=np.float32, copy=True)
    seen = sp.csr_matrix(seen)
    r, c = seen.nonzero()
    out[r, c] = -np.inf
    return out


def fit_with_early_stopping(
    model: torch.nn.Module,
    train_epoch: Callable[[int], float],
    validate: Callable[[], float] | None,
    *,
    name: str,
    device: str,
    max_epochs: int,
    eval_every: int = 5,
    patience: int = 5,
    progress: bool = False,
) -> TrainingReport:
    """Run ``train_epoch(epoch) -> mean loss`` up to ``max_epochs`` times.

    Every ``eval_every`` epochs ``validate() -> score`` (higher is better) is called;
    the best ``state_dict`` is kept (a CPU copy) and restored at the end, and training
    stops after ``patience`` validations without improvement. With ``validate=None``
    all ``max_epochs`` run and the last state is kept.
    """
    from tqdm.auto import tqdm

    report = TrainingReport(name=name, device=str(device))
    best_state: dict[str, Any] | None = None
    waited = 0
    bar = tqdm(range(1, max_epochs + 1), desc=name, disable=not progress, unit="epoch")
    for epoch in bar:
        model.train()
        start = time.perf_counter()
        loss = float(train_epoch(epoch))
        report.epoch_seconds.append(time.perf_counter() - start)
        report.epochs = epoch
        if not np.isfinite(loss):
            raise FloatingPointError(f"plugins.{name}: the training loss became {loss} at "
                                     f"epoch {epoch}; lower the learning rate")
        postfix: dict[str, float] = {"loss": round(loss, 4)}
        if validate is not None and (epoch % eval_every == 0 or epoch == max_epochs):
            model.eval()
            score = float(validate())
            report.history.append((epoch, score))
            postfix["val_ndcg"] = round(score, 4)
            if report.best_score is None or score > report.best_score:
                report.best_score, report.best_epoch = score, epoch
                best_state = _cpu_copy(model.state_dict())
                waited = 0
            else:
                waited += 1
                if patience and waited >= patience:
                    report.stopped_early = True
                    bar.set_postfix(postfix)
                    break
        bar.set_postfix(postfix)
    bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    else:
        report.best_epoch = report.epochs
    model.eval()
    log.info("plugins.%s: %d epochs on %s (%.2f s/epoch), best epoch %d, validation "
             "NDCG %s", name, report.epochs, device, report.seconds_per_epoch,
             report.best_epoch, report.best_score)
    return report


def train_then_refit(
    matrix: sp.csr_matrix,
    train: Callable[[sp.csr_matrix, sp.csr_matrix | None, int], tuple[Any, TrainingReport]],
    params: Mapping[str, Any],
    *,
    name: str,
    seed: int,
) -> tuple[Any, TrainingReport, TrainingReport | None]:
    """Early stopping on a validation split of ``matrix``, then (``refit``) a model
    trained on all of ``matrix`` for the best number of epochs.

    ``train(matrix, validation or None, epochs) -> (model, report)`` trains one model;
    returns the kept model, the early-stopped run's report and the refit's (None when
    there was no refit: ``refit = false``, ``validation_share = 0``, or users with too
    few interactions to hold any out).
    """
    share = float(params.get("validation_share", 0.1))
    max_epochs = int(params.get("max_epochs", 200))
    fit_on, validation = matrix, None
    if share > 0:
        fit_on, validation = validation_split(matrix, share, seed)
        if validation.nnz == 0:
            log.warning("plugins.%s: too few interactions per user to hold any out for "
                        "validation; training %d epochs without early stopping", name,
                        max_epochs)
            fit_on, validation = matrix, None
    model, report = train(fit_on, validation, max_epochs)
    refit = None
    if validation is not None and params.get("refit", True):
        model, refit = train(matrix, None, max(report.best_epoch, 1))
    log.info("plugins.%s: %.3f s/epoch over %d epochs%s; best validation NDCG %s at "
             "epoch %d", name, report.seconds_per_epoch, report.epochs,
             f" + {refit.epochs} epochs refitted on all the training data" if refit else "",
             report.best_score, report.best_epoch)
    return model, report, refit


class DeepRowsPlugin(Plugin):
    """What the deep plugins that learn from the users x items matrix share: torch
    required at configure, and the run's event weights, device and seed kept for
    training and for the weighting of request rows. Subclasses set ``NAME``."""

    NAME: ClassVar[str]

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._event_weights: Mapping[str, float] = DEFAULT_EVENT_WEIGHTS
        self._device = "cpu"
        self._seed = 0

    @property
    def weighting(self) -> Weighting:
        return Weighting.from_params(self.params, self._event_weights)

    @hookimpl
    def recsdk_configure(self, context: PluginContext) -> None:
        require_torch(self.NAME)
        self._event_weights = dict(context.settings.event_weights)
        self._device = context.device
        self._seed = int(context.seed)


def _cpu_copy(state: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.detach().to("cpu", copy=True) if hasattr(v, "detach") else copy.deepcopy(v))
            for k, v in state.items()}


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run a block with ``n`` torch CPU threads (None: leave torch's setting)."""
    if n is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)
