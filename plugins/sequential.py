"""What the next-item (sequential) deep plugins share: ``sasrec`` and ``gru4rec``.

Both read each user's interactions in time order and score the item that comes next;
they differ only in the network that turns a window of items into a hidden state. So
everything around the network lives here once, in :class:`SequentialPlugin`:

* **sequences**: each user's counted events (a positive weight in ``[event_weights]``,
  only ``event_types`` when given), oldest first, ties in the log's order
  (:func:`user_sequences`);
* **windows**: only the newest ``max_len`` items are read; a shorter sequence is
  left-padded so the newest item sits at the last position (:func:`padded`); training
  cuts every next-item step into windows of ``max_len`` steps (:func:`training_windows`);
* **training** through :mod:`recsdk_plugins.deep_training` (torch required at configure
  time, seeded, device from the context, early stopping keeping the best
  ``state_dict``), with the leave-last-out validation (:func:`leave_last_out`: each
  training user's last training item, never the test split) and an optional refit;
* **serving from the request history**: a known user's training sequence plus the
  history events newer than the training data, or a stranger's whole history, so the
  next list follows the last click without retraining; batch scoring of users;
  "what people chose next" for similar items;
* **state**: the network's ``state_dict`` through the artifact store (loaded with
  ``weights_only=True``), the architecture, each user's newest ``max_len`` training
  items and the known-item mask;
* **parameters** every sequential plugin takes (:class:`SequentialParams`).

A plugin subclasses :class:`SequentialPlugin`, sets ``NAME``, ``Params`` (a subclass of
:class:`SequentialParams` adding its network's parameters) and ``Architecture`` (a
frozen dataclass with ``n_items`` and ``max_len`` that round-trips through
``as_array``/``from_array``), and implements ``architecture(n_items)`` and
``build_network(arch)``. The network is an ``nn.Module`` with:

* ``items``: the item embedding, row ``code + 1`` for item ``code``, row 0 padding
  (kept at zero);
* ``hidden(seq)``: hidden states (batch x len x dim) of left-padded windows of rows;
* ``logits(h)``: every item's score (code order) for hidden states;
* ``pair_scores(h, rows)``: the scores of the given embedding rows (the ``bce`` loss).

Item code ``c`` of the dataset is embedding row ``c + 1``; padding targets are -1.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
from marshmallow import fields, validate
from recsdk_plugins.deep_training import (
    DeepParams,
    TrainingReport,
    autocast,
    fit_with_early_stopping,
    masked_scores,
    ndcg_at_k,
    require_torch,
    seed_everything,
    torch_generator,
    torch_threads,
)

from recsdk import Plugin, hookimpl
from recsdk.catalog import Catalog
from recsdk.config import DEFAULT_EVENT_WEIGHTS
from recsdk.dataset import InteractionDataset, lookup_codes
from recsdk.errors import ConfigurationError
from recsdk.interactions import candidate_scores
from recsdk.registry import ArtifactReader, ArtifactWriter
from recsdk.types import CandidateSet, PluginContext, RecommendationRequest, UserHistory

log = logging.getLogger(__name__)

PAD = 0
LOSSES = ("ce", "bce")
WEIGHTS_ARTIFACT = "network"


class SequentialParams(DeepParams):
    """Parameters of every sequential plugin (the defaults are ``sasrec``'s; a plugin
    redeclares a field to change its default)."""

    max_len = fields.Integer(
        load_default=50, validate=validate.Range(min=2, max=2048),
        metadata={"description": "window: the newest max_len items of a history are read; "
                  "older ones are dropped"})
    dropout = fields.Float(
        load_default=0.2, validate=validate.Range(min=0.0, max=0.9),
        metadata={"description": "dropout inside the network"})
    loss = fields.String(
        load_default="ce", validate=validate.OneOf(LOSSES),
        metadata={"description": "ce: softmax cross-entropy over all items; bce: binary "
                  "loss against one uniformly sampled negative per step"})
    learning_rate = fields.Float(
        load_default=3e-3, validate=validate.Range(min=1e-6, max=1.0),
        metadata={"description": "Adam learning rate"})
    weight_decay = fields.Float(
        load_default=0.0, validate=validate.Range(min=0.0, max=1.0),
        metadata={"description": "Adam (decoupled) weight decay"})
    batch_size = fields.Integer(
        load_default=256, validate=validate.Range(min=1, max=65_536),
        metadata={"description": "training windows per step"})
    event_types = fields.List(
        fields.String(), load_default=None, allow_none=True, validate=validate.Length(min=1),
        metadata={"description": "learn only from these event types (none: every type with "
                  "a positive weight in [event_weights])"})
    validation_share = fields.Float(
        load_default=1.0, validate=validate.Range(min=0.0, max=1.0),
        metadata={"description": "share of training users whose last training item is held "
                  "out for early stopping (leave-last-out; 0: no validation)"})
    refit = fields.Boolean(
        load_default=False,
        metadata={"description": "after early stopping, train again on all the training "
                  "data for the best number of epochs; off by default: the validation "
                  "holds out one item per user, which scoring still reads as input, and a "
                  "refit doubles the training time"})
    num_threads = fields.Integer(
        load_default=None, allow_none=True, validate=validate.Range(min=1, max=512),
        metadata={"description": "torch CPU threads while training (none: torch's default)"})


class SequentialPlugin(Plugin):
    """Next-item scores from a network over the user's newest items (see the module
    docstring for what a subclass provides)."""

    NAME: ClassVar[str]
    Params = SequentialParams
    Architecture: ClassVar[type]

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._event_weights: Mapping[str, float] = DEFAULT_EVENT_WEIGHTS
        self._device = "cpu"
        self._seed = 0
        self.report_: TrainingReport | None = None

    # ---- what a plugin provides ------------------------------------------------------

    def architecture(self, n_items: int) -> Any:
        """The configured ``Architecture`` for a catalogue of ``n_items``."""
        raise NotImplementedError

    def build_network(self, arch: Any) -> Any:
        """The ``nn.Module`` for ``arch`` (torch imported inside)."""
        raise NotImplementedError

    # ---- lifecycle -------------------------------------------------------------------

    @hookimpl
    def recsdk_configure(self, context: PluginContext) -> None:
        require_torch(self.NAME)
        self._event_weights = dict(context.settings.event_weights)
        self._device = context.device
        self._seed = int(context.seed)

    def _kept(self, types: Any) -> np.ndarray:
        """Which events count: a positive type weight, and a listed type if any are."""
        allowed = self.params.get("event_types")
        allowed = None if allowed is None else set(allowed)
        get = self._event_weights.get
        return np.fromiter(((get(t, 1.0) > 0) and (allowed is None or t in allowed)
                            for t in types), dtype=bool, count=len(types))

    @hookimpl
    def recsdk_fit(self, dataset: InteractionDataset, context: PluginContext) -> None:
        require_torch(self.NAME)
        self._event_weights = dict(context.settings.event_weights)
        self._device, self._seed = context.device, int(context.seed)
        inter = dataset.interactions
        keep = self._kept(inter["type"].to_numpy())
        if not keep.any():
            raise ConfigurationError(
                f"plugins.{self.NAME}: no interaction with a positive weight among the "
                f"event types {self.params.get('event_types') or 'configured'}; nothing "
                f"to learn")
        users = inter["user"].to_numpy(np.int64)[keep]
        items = inter["item"].to_numpy(np.int64)[keep]
        times = inter["timestamp"].to_numpy(np.float64)[keep]
        indptr, seq = user_sequences(users, items, np.nan_to_num(times, nan=-np.inf),
                                     dataset.n_users)
        with torch_threads(self.params.get("num_threads")):
            net = self._train(dataset.n_items, indptr, seq)
        known = np.zeros(dataset.n_items, dtype=bool)
        known[items] = True
        self.arch_ = self.architecture(dataset.n_items)
        self.net_ = net
        self.known_ = known
        self.data_end_ = float(np.nanmax(times)) if np.isfinite(times).any() else -np.inf
        # only the newest max_len items of each user are ever read back
        self.seq_indptr_, self.seq_items_ = tails(indptr, seq, self.arch_.max_len)
        self.user_index_ = dataset.user_index
        self.item_index_ = dataset.item_index

    def _train(self, n_items: int, indptr: np.ndarray, seq: np.ndarray) -> Any:
        """Early stopping on leave-last-out, then (``refit``) the same epochs on all."""
        p = self.params
        train_ptr, train_seq, val_users, val_items = leave_last_out(
            indptr, seq, float(p.get("validation_share", 1.0)), self._seed)
        max_epochs = int(p.get("max_epochs", 200))
        if len(val_users) == 0:
            net, self.report_ = self._run(n_items, indptr, seq, None, max_epochs)
            return net
        net, report = self._run(n_items, train_ptr, train_seq, (val_users, val_items),
                                max_epochs)
        self.report_ = report
        if p.get("refit", False):
            net, _ = self._run(n_items, indptr, seq, None, max(report.best_epoch, 1))
        return net

    def _run(self, n_items: int, indptr: np.ndarray, seq: np.ndarray,
             validation: tuple[np.ndarray, np.ndarray] | None,
             epochs: int) -> tuple[Any, TrainingReport]:
        import torch
        from torch.nn import functional as F

        p = self.params
        seed_everything(self._seed)
        arch = self.architecture(n_items)
        device = self._device
        net = self.build_network(arch).to(device)
        optimizer = torch.optim.AdamW(net.parameters(), lr=float(p.get("learning_rate", 1e-3)),
                                      weight_decay=float(p.get("weight_decay", 0.0)))
        rng = np.random.default_rng(self._seed)
        gen = torch_generator(self._seed, device)
        batch = int(p.get("batch_size", 128))
        loss_kind = p.get("loss", "ce")

        def train_epoch(epoch: int) -> float:
            x, y = training_windows(indptr, seq, arch.max_len,
                                    int(rng.integers(arch.max_len)))
            order = rng.permutation(len(x))
            total, steps = 0.0, 0
            for start in range(0, len(order), batch):
                idx = order[start:start + batch]
                xb = torch.from_numpy(x[idx]).to(device)
                yb = torch.from_numpy(y[idx]).to(device)
                with autocast(device):
                    h = net.hidden(xb)
                    real = yb >= 0
                    if loss_kind == "ce":
                        logits = net.logits(h[real]).float()
                        loss = F.cross_entropy(logits, yb[real])
                    else:
                        hr = h[real]
                        pos = yb[real] + 1
                        neg = torch.randint(1, n_items + 1, pos.shape, generator=gen,
                                            device=device)
                        sp = net.pair_scores(hr, pos).float()
                        sn = net.pair_scores(hr, neg).float()
                        loss = (F.binary_cross_entropy_with_logits(sp, torch.ones_like(sp))
                                + F.binary_cross_entropy_with_logits(sn, torch.zeros_like(sn)))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                with torch.no_grad():
                    net.items.weight[PAD].zero_()
                total += loss.item()
                steps += 1
            return total / max(steps, 1)

        validate = None
        if validation is not None:
            val_users, val_items = validation
            histories = [seq[indptr[u]:indptr[u + 1]] for u in val_users]
            truth = one_hot_rows([np.array([i]) for i in val_items], n_items)
            seen = one_hot_rows(histories, n_items)

            def validate() -> float:
                scores = score_sequences(net, histories, arch, device)
                return ndcg_at_k(masked_scores(scores, seen), truth, 10)

        report = fit_with_early_stopping(
            net, train_epoch, validate, name=self.NAME, device=device, max_epochs=epochs,
            eval_every=int(p.get("eval_every", 5)), patience=int(p.get("patience", 5)),
            progress=bool(p.get("progress", False)))
        return net, report

    @hookimpl
    def recsdk_save_state(self, artifacts: ArtifactWriter) -> Mapping[str, np.ndarray] | None:
        if not hasattr(self, "net_"):
            return None
        artifacts.save_torch(WEIGHTS_ARTIFACT, self.net_.state_dict())
        return {"architecture": self.arch_.as_array(), "known": self.known_,
                "seq_indptr": self.seq_indptr_, "seq_items": self.seq_items_,
                "data_end": np.array([self.data_end_])}

    @hookimpl
    def recsdk_load_state(self, state: Mapping[str, np.ndarray], dataset: InteractionDataset,
                          artifacts: ArtifactReader) -> None:
        # the saved architecture wins over the configured one: a changed size in the
        # configuration cannot break a stored run
        arch = self.Architecture.from_array(state["architecture"])
        if arch.n_items != dataset.n_items:
            raise ConfigurationError(
                f"plugins.{self.NAME}: saved model has {arch.n_items} items but the run's "
                f"vocabulary has {dataset.n_items}")
        net = self.build_network(arch)
        net.load_state_dict(artifacts.load_torch(WEIGHTS_ARTIFACT))
        self.net_ = net.to(self._device).eval()
        self.arch_ = arch
        self.known_ = np.asarray(state["known"], dtype=bool)
        self.seq_indptr_ = np.asarray(state["seq_indptr"], dtype=np.int64)
        self.seq_items_ = np.asarray(state["seq_items"], dtype=np.int64)
        self.data_end_ = float(state["data_end"][0])
        self.user_index_ = dataset.user_index
        self.item_index_ = dataset.item_index

    # ---- scoring ---------------------------------------------------------------------

    def training_sequence(self, user_id: str | None) -> np.ndarray:
        """The user's newest training items (codes, oldest first); empty if unknown."""
        code = None if user_id is None else self.user_index_.get(user_id)
        if code is None:
            return np.zeros(0, dtype=np.int64)
        return self.seq_items_[self.seq_indptr_[code]:self.seq_indptr_[code + 1]]

    def request_sequence(self, user_id: str | None, history: UserHistory) -> np.ndarray:
        """The sequence a request is scored from: the training sequence plus history
        events newer than the training data (a user the model never saw: the whole
        history), counted events only, items the model knows only; the newest
        ``max_len`` of them."""
        base = self.training_sequence(user_id)
        known_user = user_id is not None and user_id in self.user_index_
        times = np.asarray(history.timestamps, dtype=np.float64)
        new = (np.isfinite(times) & (times > self.data_end_) if known_user
               else np.ones(len(history), dtype=bool))
        new &= self._kept(history.types)
        idx = np.flatnonzero(new)
        if len(idx):
            # oldest first; ties (and missing times) keep the history's order
            idx = idx[np.lexsort((idx, np.nan_to_num(times[idx], nan=-np.inf)))]
            codes = lookup_codes(self.item_index_, [history.item_ids[i] for i in idx])
            codes = codes[(codes >= 0) & (codes < self.arch_.n_items)]
            codes = codes[self.known_[codes]]
            base = np.concatenate([base, codes])
        return base[-self.arch_.max_len:]

    def _full(self, scores: np.ndarray) -> np.ndarray:
        out = np.asarray(scores, dtype=np.float64)
        out[..., ~self.known_] = np.nan
        return out

    @hookimpl
    def recsdk_score(self, request: RecommendationRequest,
                     candidates: CandidateSet) -> np.ndarray | None:
        if not hasattr(self, "net_"):
            return None
        seq = self.request_sequence(request.user_id, request.history)
        if len(seq) == 0:
            return None  # nothing to continue from: abstain, the fallback serves
        scores = score_sequences(self.net_, [seq], self.arch_, self._device)[0]
        return candidate_scores(self._full(scores), candidates)

    @hookimpl
    def recsdk_score_users(self, user_ids: list[str],
                           candidates: CandidateSet) -> np.ndarray | None:
        if not hasattr(self, "net_"):
            return None
        seqs = [self.training_sequence(u) for u in user_ids]
        scores = score_sequences(self.net_, seqs, self.arch_, self._device)
        scores = self._full(scores)
        scores[np.array([len(s) == 0 for s in seqs], dtype=bool)] = np.nan
        return candidate_scores(scores, candidates)

    @hookimpl
    def recsdk_score_similar(self, item_id: str, candidates: CandidateSet,
                             catalog: Catalog | None) -> np.ndarray | None:
        """The next-item scores after a one-item sequence ("what people chose next")."""
        if not hasattr(self, "net_"):
            return None
        code = self.item_index_.get(item_id)
        if code is None or code >= self.arch_.n_items or not self.known_[code]:
            return None
        scores = score_sequences(self.net_, [np.array([code])], self.arch_, self._device)[0]
        return candidate_scores(self._full(scores), candidates)


# ---- sequences and windows (numpy) -------------------------------------------------------


def user_sequences(users: np.ndarray, items: np.ndarray, timestamps: np.ndarray,
                   n_users: int) -> tuple[np.ndarray, np.ndarray]:
    """Each user's item codes in time order, ties kept in input order: (indptr, items)."""
    order = np.lexsort((np.arange(len(users)), timestamps, users))
    counts = np.bincount(users, minlength=n_users)
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return indptr, np.asarray(items, dtype=np.int64)[order]


def padded(seqs: list[np.ndarray], max_len: int) -> np.ndarray:
    """Left-padded embedding rows (code + 1) of the last ``max_len`` items of each."""
    out = np.zeros((len(seqs), max_len), dtype=np.int64)
    for row, seq in enumerate(seqs):
        tail = np.asarray(seq[-max_len:], dtype=np.int64)
        if len(tail):
            out[row, max_len - len(tail):] = tail + 1
    return out


def training_windows(indptr: np.ndarray, items: np.ndarray, max_len: int,
                     offset: int) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, targets) windows of embedding rows covering every next-item step.

    Each user's sequence ``s`` gives inputs ``s[:-1]`` and targets ``s[1:]``, cut into
    windows of ``max_len`` steps counted back from the newest; ``offset`` (0 to
    ``max_len - 1``, drawn per epoch) moves the older cuts so a step is not always at
    the same window position. Padding targets are -1 (ignored by the loss).
    """
    inputs, targets = [], []
    for u in range(len(indptr) - 1):
        s = items[indptr[u]:indptr[u + 1]]
        n = len(s) - 1
        if n < 1:
            continue
        ends = [n]
        end = n - max_len + (offset if n > max_len else 0)
        while end > 0:
            ends.append(end)
            end -= max_len
        for e in ends:
            start = max(0, e - max_len)
            x = np.zeros(max_len, dtype=np.int64)
            y = np.full(max_len, -1, dtype=np.int64)
            x[max_len - (e - start):] = s[start:e] + 1
            y[max_len - (e - start):] = s[start + 1:e + 1]
            inputs.append(x)
            targets.append(y)
    if not inputs:
        return np.zeros((0, max_len), dtype=np.int64), np.zeros((0, max_len), dtype=np.int64)
    return np.stack(inputs), np.stack(targets)


def leave_last_out(indptr: np.ndarray, seq: np.ndarray, share: float, seed: int,
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Hold out the last item of a seeded ``share`` of users with two items or more.

    Returns the remaining sequences (indptr, items), the validation users and their
    held-out items.
    """
    counts = np.diff(indptr)
    rng = np.random.default_rng(seed)
    eligible = np.flatnonzero(counts >= 2)
    chosen = np.sort(rng.permutation(eligible)[:round(share * len(eligible))])
    drop = np.zeros(len(seq), dtype=bool)
    drop[indptr[chosen + 1] - 1] = True
    new_counts = counts.copy()
    new_counts[chosen] -= 1
    new_ptr = np.concatenate([[0], np.cumsum(new_counts)]).astype(np.int64)
    return new_ptr, seq[~drop], chosen, seq[indptr[chosen + 1] - 1]


def tails(indptr: np.ndarray, seq: np.ndarray, max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """The newest ``max_len`` items of each user's sequence: (indptr, items)."""
    counts = np.minimum(np.diff(indptr), max_len)
    keep = np.concatenate([np.arange(indptr[u + 1] - c, indptr[u + 1])
                           for u, c in enumerate(counts)]) if len(counts) else np.zeros(0)
    new_ptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return new_ptr, seq[keep.astype(np.int64)]


def one_hot_rows(rows: list[np.ndarray], n_items: int) -> Any:
    """A CSR matrix with a 1 at each row's items (the validation's truth and seen)."""
    import scipy.sparse as sp

    r = np.repeat(np.arange(len(rows)), [len(s) for s in rows])
    c = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
    m = sp.csr_matrix((np.ones(len(c), dtype=np.float32), (r, c)), shape=(len(rows), n_items))
    m.sum_duplicates()
    return m


def score_sequences(net: Any, seqs: list[np.ndarray], arch: Any, device: str,
                    batch: int = 512) -> np.ndarray:
    """Next-item scores (len(seqs) x n_items, float32) after each sequence."""
    import torch

    out = np.zeros((len(seqs), arch.n_items), dtype=np.float32)
    net.eval()
    with torch.no_grad():
        for start in range(0, len(seqs), batch):
            x = torch.from_numpy(padded(seqs[start:start + batch], arch.max_len)).to(device)
            with autocast(device):
                scores = net.logits(net.hidden(x)[:, -1])
            out[start:start + len(x)] = scores.float().cpu().numpy()
    return out
