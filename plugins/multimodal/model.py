"""Collaborative vectors (implicit ALS) and the content-to-collaborative mapping network.

* :func:`als_factors`: user and item vectors from behaviour, by alternating the closed
  form ALS half-steps (Hu, Koren & Volinsky 2008) of
  :func:`recsdk_plugins.factorization.foldin.als_fold_in`;
* :class:`ContentMapper`: fused content row -> (item vector in the ALS space, bias);
  an MLP trained with a sampled-softmax ranking loss of the frozen ALS user vectors
  against the mapped vectors of the users' items (uniform negatives), plus a squared
  distance to the item's ALS vector (the content-to-CF mapping of Gantner et al. 2010,
  optimised for ranking as in their BPR-map), with whole text/image blocks dropped at
  random during training (DropoutNet, Volkovs et al. 2017) so items without them still
  map well.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp
from recsdk_plugins.deep_training import autocast, ndcg_at_k
from recsdk_plugins.factorization.foldin import als_fold_in

if TYPE_CHECKING:
    import torch

#: Rows mapped per forward pass when mapping a whole catalogue.
MAP_BATCH = 4096


def als_factors(matrix: sp.csr_matrix, factors: int, regularization: float, alpha: float,
                iterations: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(user vectors, item vectors) of implicit ALS; items without users get zeros."""
    m = sp.csr_matrix(matrix, dtype=np.float64)
    rng = np.random.default_rng(seed)
    items = (rng.standard_normal((m.shape[1], factors)) * 0.01).astype(np.float64)
    mt = sp.csr_matrix(m.T)
    users = np.zeros((m.shape[0], factors))
    for _ in range(iterations):
        users = als_fold_in(m, items, regularization, alpha)
        items = als_fold_in(mt, users, regularization, alpha)
    return users.astype(np.float32), items.astype(np.float32)


def dense_rows(matrix: sp.csr_matrix, rows: np.ndarray) -> np.ndarray:
    return np.asarray(matrix[rows].toarray(), dtype=np.float32)


def build_mapper(n_in: int, factors: int, hidden: int, dropout: float) -> torch.nn.Module:
    """The mapping network (hidden = 0: linear)."""
    import torch
    from torch import nn

    class ContentMapper(nn.Module):
        """Fused content row -> item vector (``factors``) and a scalar bias."""

        def __init__(self) -> None:
            super().__init__()
            if hidden:
                self.body = nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(),
                                          nn.Dropout(dropout), nn.Linear(hidden, factors + 1))
            else:
                self.body = nn.Sequential(nn.Dropout(dropout), nn.Linear(n_in, factors + 1))
            self.log_scale = nn.Parameter(torch.zeros(()))

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            out = self.body(x).float()
            return out[:, :-1], out[:, -1]

    return ContentMapper()


@dataclass
class TrainingData:
    """What one training run of the mapper sees."""

    content: sp.csr_matrix  # fused rows of every item
    matrix: sp.csr_matrix  # users x items interactions learned from
    users: np.ndarray  # ALS user vectors
    items: np.ndarray  # ALS item vectors (zero rows for items without users)
    droppable: list[tuple[slice, int]]  # (columns, flag column) of blocks to drop


@dataclass
class MapperConfig:
    factors: int
    hidden: int
    dropout: float
    learning_rate: float
    weight_decay: float
    batch_size: int
    negatives: int
    align_weight: float
    block_dropout: float
    device: str


class MapperTrainer:
    """One epoch at a time over the (user, item) pairs of ``data.matrix``."""

    def __init__(self, data: TrainingData, config: MapperConfig, seed: int) -> None:
        import torch

        self.torch = torch
        self.data, self.config = data, config
        self.model = build_mapper(data.content.shape[1], config.factors, config.hidden,
                                  config.dropout).to(config.device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.learning_rate,
                                          weight_decay=config.weight_decay)
        coo = sp.coo_matrix(data.matrix)
        self.pair_users, self.pair_items = coo.row.astype(np.int64), coo.col.astype(np.int64)
        self.item_pool = np.flatnonzero(np.diff(sp.csc_matrix(data.matrix).indptr) > 0)
        self.rng = np.random.default_rng(seed)
        self.users = torch.as_tensor(data.users, device=config.device)
        self.targets = torch.as_tensor(data.items, device=config.device)

    def _inputs(self, items: np.ndarray) -> torch.Tensor:
        x = dense_rows(self.data.content, items)
        if self.config.block_dropout > 0:
            for columns, flag in self.data.droppable:
                drop = (self.rng.random(len(items)) < self.config.block_dropout) & (
                    x[:, flag] == 0)
                x[np.ix_(drop, np.arange(columns.start, columns.stop))] = 0.0
                x[drop, flag] = 1.0
        return self.torch.as_tensor(x, device=self.config.device)

    def epoch(self, _: int) -> float:
        torch, cfg = self.torch, self.config
        order = self.rng.permutation(len(self.pair_users))
        total, batches = 0.0, 0
        for start in range(0, len(order), cfg.batch_size):
            rows = order[start:start + cfg.batch_size]
            users, positives = self.pair_users[rows], self.pair_items[rows]
            negatives = self.rng.choice(self.item_pool, size=cfg.negatives)
            items, inverse = np.unique(np.concatenate([positives, negatives]),
                                       return_inverse=True)
            with autocast(cfg.device):
                vectors, bias = self.model(self._inputs(items))
            scale = torch.exp(self.model.log_scale) * 5.0
            u = self.users[torch.as_tensor(users, device=cfg.device)]
            pos = torch.as_tensor(inverse[:len(rows)], device=cfg.device)
            neg = torch.as_tensor(inverse[len(rows):], device=cfg.device)
            logit_pos = (u * vectors[pos]).sum(1) + bias[pos]
            logit_neg = u @ vectors[neg].T + bias[neg][None, :]
            logits = scale * torch.cat([logit_pos[:, None], logit_neg], dim=1)
            target = torch.zeros(len(rows), dtype=torch.long, device=cfg.device)
            loss = torch.nn.functional.cross_entropy(logits, target)
            if cfg.align_weight > 0:
                known = torch.as_tensor(items, device=cfg.device)
                gap = vectors - self.targets[known]
                loss = loss + cfg.align_weight * (gap * gap).sum(1).mean()
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            total += float(loss.detach())
            batches += 1
        return total / max(batches, 1)


def map_items(model: torch.nn.Module, content: sp.csr_matrix,
              device: str) -> tuple[np.ndarray, np.ndarray]:
    """(vectors, biases) of every row of ``content`` (inference mode)."""
    import torch

    model.eval()
    vectors, biases = [], []
    with torch.no_grad():
        for start in range(0, content.shape[0], MAP_BATCH):
            x = torch.as_tensor(dense_rows(content, np.arange(start, min(
                start + MAP_BATCH, content.shape[0]))), device=device)
            with autocast(device):
                v, b = model(x)
            vectors.append(v.float().cpu().numpy())
            biases.append(b.float().cpu().numpy())
    if not vectors:
        return np.zeros((0, 0), dtype=np.float32), np.zeros(0, dtype=np.float32)
    return np.vstack(vectors), np.concatenate(biases)


def cold_validator(model: torch.nn.Module, content: sp.csr_matrix, users: np.ndarray,
                   held: np.ndarray, truth: sp.csr_matrix, device: str,
                   k: int = 10) -> Callable[[], float]:
    """NDCG@k of ranking only the pseudo-cold items ``held`` for users who had them."""
    active = np.flatnonzero(np.diff(sp.csr_matrix(truth).indptr) > 0)
    rows = sp.csr_matrix(truth)[active][:, held]

    def validate() -> float:
        vectors, biases = map_items(model, content[held], device)
        scores = users[active] @ vectors.T + biases[None, :]
        return ndcg_at_k(scores, rows, k)

    return validate
