"""The two towers (torch) and their training by in-batch sampled softmax with logQ correction.

Yi et al. (RecSys 2019), "Sampling-Bias-Corrected Neural Modeling for Large Corpus Item
Recommendations": each batch of (user, item) positives is its own set of negatives;
item ``j``'s logit for user ``i`` is ``cos(u_i, v_j) / temperature - log q_j``, with
``q_j`` the share of positives that are item ``j`` (the probability that ``j`` is drawn
into a batch), so popular items are not over-penalised for being sampled often and
the in-batch softmax estimates the full one. Duplicates of the positive item elsewhere
in the batch are masked out (they are not negatives).

Item tower: ``v = id(i) + MLP([category path, tags, text, price])``, unit length. The
id embedding is zeroed for a random share of items in every batch (``id_dropout``), so
``MLP(content)`` alone must place an item well: that is how an item never trained on is
embedded. Items with no training interaction never use their id row.

User tower: ``u = id(user) + MLP([mean of the item-tower vectors of the user's last N
items, category affinity])``, unit length; the affinity is the share of those items in
every node of the category tree (the interest model's category affinity, without time
decay), pooled through a node embedding. For a training pair the history is the user's
last N other items (the target left out, so the tower cannot copy it), thinned by
``history_dropout``; the user id is dropped like item ids, so a user the model never
saw is served from their history alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from recsdk_plugins.deep_training import (
    autocast,
    averaged_copy,
    masked_scores,
    ndcg_at_k,
    torch_generator,
    update_average,
)
from recsdk_plugins.two_tower.features import ItemArrays
from torch import nn

#: rows per forward pass when embedding all items or users outside training
CHUNK = 8192
#: score cells per block when validating (float32: 64 MiB)
SCORE_CELLS = 2**24


@dataclass(frozen=True)
class Sizes:
    """What the network's shapes depend on (saved with the weights)."""

    n_users: int
    n_items: int
    n_nodes: int
    n_tags: int
    n_words: int
    text_dim: int

    def to_array(self) -> np.ndarray:
        return np.array([self.n_users, self.n_items, self.n_nodes, self.n_tags,
                         self.n_words, self.text_dim], dtype=np.int64)

    @classmethod
    def from_array(cls, values: np.ndarray) -> Sizes:
        return cls(*(int(v) for v in values))


class TwoTowerNet(nn.Module):
    """User and item towers; both answer unit vectors of ``dim`` values."""

    def __init__(self, sizes: Sizes, dim: int, hidden: int, user_ids: bool = True) -> None:
        super().__init__()
        self.sizes = sizes
        # without user ids (user_id_dropout = 1) the table would never be trained
        self.user_id = nn.Embedding(sizes.n_users + 1, dim, padding_idx=sizes.n_users) \
            if user_ids else None
        self.item_id = nn.Embedding(sizes.n_items + 1, dim, padding_idx=sizes.n_items)
        self.item_cat = nn.EmbeddingBag(sizes.n_nodes + 1, dim, mode="mean",
                                        padding_idx=sizes.n_nodes)
        self.item_tag = nn.EmbeddingBag(sizes.n_tags + 1, dim, mode="sum",
                                        padding_idx=sizes.n_tags)
        self.item_price = nn.Linear(3, dim)
        self.item_word = self.item_text = None
        if sizes.n_words:
            self.item_word = nn.EmbeddingBag(sizes.n_words + 1, dim, mode="sum",
                                             padding_idx=sizes.n_words)
        if sizes.text_dim:
            self.item_text = nn.Linear(sizes.text_dim, dim)
        # the parts are summed, not concatenated: each is already a learned linear map
        # of its input, so a sum is as expressive as concatenation before the first
        # layer, at a fraction of the cost (the item tower runs on every history item)
        self.item_mlp = nn.Sequential(nn.ReLU(), nn.Linear(dim, hidden), nn.ReLU(),
                                      nn.Linear(hidden, dim))
        self.user_cat = nn.EmbeddingBag(sizes.n_nodes + 1, dim, mode="mean",
                                        padding_idx=sizes.n_nodes)
        self.user_mlp = nn.Sequential(nn.Linear(2 * dim, hidden), nn.ReLU(),
                                      nn.Linear(hidden, dim))
        for table in (self.user_id, self.item_id):
            if table is None:
                continue
            nn.init.normal_(table.weight, std=0.1)
            with torch.no_grad():
                table.weight[table.padding_idx].zero_()

    def item(self, ids: torch.Tensor, x: dict[str, torch.Tensor]) -> torch.Tensor:
        """Unit item vectors; ``ids`` = ``n_items`` means "no id" (content only)."""
        parts = [self.item_cat(x["cat"]),
                 self.item_tag(x["tag"], per_sample_weights=x["tag_w"]),
                 self.item_price(x["price"])]
        if self.item_word is not None:
            parts.append(self.item_word(x["word"], per_sample_weights=x["word_w"]))
        if self.item_text is not None:
            parts.append(self.item_text(x["text"]))
        out = self.item_id(ids) + self.item_mlp(torch.stack(parts).sum(dim=0))
        return F.normalize(out.float(), dim=1)

    def user(self, ids: torch.Tensor, pooling: torch.Tensor, vectors: torch.Tensor,
             paths: torch.Tensor) -> torch.Tensor:
        """Unit user vectors from ids (``n_users``: none) and history: ``pooling`` (a
        sparse users x H matrix, each row's weights summing to one) averages the H
        history items' vectors and their category paths (H x D node indices)."""
        pooled = torch.sparse.mm(pooling, vectors.float())
        affinity = torch.sparse.mm(pooling, self.user_cat(paths).float())
        return self.user_pooled(ids, pooled, affinity)

    def user_pooled(self, ids: torch.Tensor, pooled: torch.Tensor,
                    affinity: torch.Tensor) -> torch.Tensor:
        """:meth:`user` from the pooled history vector and pooled category affinity."""
        out = self.user_mlp(torch.cat([pooled, affinity], dim=1))
        if self.user_id is not None:
            out = out + self.user_id(ids)
        return F.normalize(out.float(), dim=1)


def pooling_matrix(keep: torch.Tensor, columns: torch.Tensor, n_columns: int) -> torch.Tensor:
    """Sparse rows x ``n_columns`` matrix averaging, per row, the ``columns`` it keeps."""
    count = keep.sum(dim=1, keepdim=True).clamp(min=1)
    weights = (keep.float() / count)[keep]
    rows = torch.arange(len(keep), device=keep.device)[:, None].expand_as(keep)[keep]
    return torch.sparse_coo_tensor(torch.stack([rows, columns[keep]]), weights,
                                   (len(keep), n_columns),
                                   check_invariants=False).coalesce()


def item_tensors(arrays: ItemArrays, device: str) -> dict[str, torch.Tensor]:
    """The item arrays as tensors on ``device``."""
    out = {"cat": torch.as_tensor(arrays.cat, dtype=torch.long),
           "tag": torch.as_tensor(arrays.tag, dtype=torch.long),
           "tag_w": torch.as_tensor(arrays.tag_w, dtype=torch.float32),
           "price": torch.as_tensor(arrays.price, dtype=torch.float32)}
    if arrays.text is not None:
        out["text"] = torch.as_tensor(np.asarray(arrays.text), dtype=torch.float32)
    if arrays.word is not None:
        out["word"] = torch.as_tensor(arrays.word, dtype=torch.long)
        out["word_w"] = torch.as_tensor(arrays.word_w, dtype=torch.float32)
    return {k: v.to(device) for k, v in out.items()}


def take(x: dict[str, torch.Tensor], rows: torch.Tensor) -> dict[str, torch.Tensor]:
    return {k: v[rows] for k, v in x.items()}


def history_windows(matrix: sp.csr_matrix, times: np.ndarray, width: int) -> np.ndarray:
    """Each user's ``width`` most recent positive items (codes), oldest first, padded
    at the front with -1. ``times``: each stored cell's newest event time, in the
    CSR order of ``matrix``; ties are broken by item code."""
    m = sp.csr_matrix(matrix)
    counts = np.diff(m.indptr)
    rows = np.repeat(np.arange(m.shape[0]), counts)
    order = np.lexsort((m.indices, times, rows))
    items, rows = m.indices[order], rows[order]
    position = np.arange(m.nnz) - np.repeat(m.indptr[:-1], counts)
    from_end = np.repeat(counts, counts) - position  # 1 for the newest
    kept = from_end <= width
    out = np.full((m.shape[0], width), -1, dtype=np.int64)
    out[rows[kept], width - from_end[kept]] = items[kept]
    return out


class Trainer:
    """One training run's data on the device, and the two callbacks early stopping calls."""

    def __init__(self, net: TwoTowerNet, items: dict[str, torch.Tensor], has_id: np.ndarray,
                 positives: sp.csr_matrix, windows: np.ndarray, *, temperature: float,
                 batch_size: int, learning_rate: float, weight_decay: float,
                 id_dropout: float, user_id_dropout: float, history_dropout: float,
                 seed: int, device: str, ema_decay: float = 0.0) -> None:
        self.net = net.to(device)
        #: the network validated, kept and served: the trained weights' moving average
        #: (``ema_decay`` > 0) or the trained network itself
        self.kept = averaged_copy(self.net, ema_decay)
        self.ema_decay = ema_decay
        self.items = items
        self.device = device
        self.has_id = torch.as_tensor(has_id, dtype=torch.bool, device=device)
        coo = sp.coo_matrix(positives)
        self.pos_user = torch.as_tensor(coo.row, dtype=torch.long, device=device)
        self.pos_item = torch.as_tensor(coo.col, dtype=torch.long, device=device)
        counts = np.bincount(coo.col, minlength=positives.shape[1]).astype(np.float64)
        self.log_q = torch.as_tensor(np.log(np.maximum(counts, 1) / max(coo.nnz, 1)),
                                     dtype=torch.float32, device=device)
        self.windows = torch.as_tensor(windows, dtype=torch.long, device=device)
        self.temperature = temperature
        self.batch_size = batch_size
        self.id_dropout = id_dropout
        self.user_id_dropout = user_id_dropout
        self.history_dropout = history_dropout
        self.generator = torch_generator(seed, device)
        self.optimizer = torch.optim.Adam(net.parameters(), lr=learning_rate,
                                          weight_decay=weight_decay)

    def _rand(self, *shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=self.generator, device=self.device)

    def train_epoch(self, epoch: int) -> float:
        net, n_items, n_users = self.net, self.net.sizes.n_items, self.net.sizes.n_users
        net.train()
        order = torch.randperm(len(self.pos_user), generator=self.generator,
                               device=self.device)
        total, batches = 0.0, 0
        for start in range(0, len(order), self.batch_size):
            batch = order[start:start + self.batch_size]
            if len(batch) < 2:
                continue
            users, targets = self.pos_user[batch], self.pos_item[batch]
            window = self.windows[users]
            valid = window >= 0
            match = window == targets[:, None]
            has = match.any(dim=1)
            keep = valid & ~match
            # a target older than the window: drop the oldest so N items remain
            first = valid.float().argmax(dim=1)
            rows = torch.arange(len(batch), device=self.device)
            keep[rows, first] &= has
            if self.history_dropout:
                keep &= self._rand(*keep.shape) >= self.history_dropout
            safe = torch.where(valid, window, targets[:, None])
            unique, inverse = torch.unique(torch.cat([safe.flatten(), targets]),
                                           return_inverse=True)
            ids = torch.where(self.has_id[unique] & (self._rand(len(unique)) >= self.id_dropout),
                              unique, torch.full_like(unique, n_items))
            user_ids = torch.where(self._rand(len(batch)) >= self.user_id_dropout, users,
                                   torch.full_like(users, n_users))
            pooling = pooling_matrix(keep, inverse[:safe.numel()].view_as(safe), len(unique))
            with autocast(self.device):
                vectors = net.item(ids, take(self.items, unique))
                target_vectors = vectors[inverse[safe.numel():]]
                user_vectors = net.user(user_ids, pooling, vectors, self.items["cat"][unique])
            logits = user_vectors @ target_vectors.T / self.temperature
            logits = logits - self.log_q[targets][None, :]
            duplicate = (targets[None, :] == targets[:, None]) & ~torch.eye(
                len(batch), dtype=torch.bool, device=self.device)
            logits = logits.masked_fill(duplicate, float("-inf"))
            loss = F.cross_entropy(logits, rows)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            if self.kept is not net:
                update_average(self.kept, net, self.ema_decay)
            total += float(loss.detach())
            batches += 1
        return total / max(batches, 1)

    def validator(self, train: sp.csr_matrix, validation: sp.csr_matrix, windows: np.ndarray,
                  k: int = 10) -> Callable[[], float]:
        """NDCG@k of the held-out validation items, training items masked."""
        users = np.flatnonzero(np.diff(sp.csr_matrix(validation).indptr) > 0)

        def validate() -> float:
            items = embed_items(self.kept, self.items, self.has_id, self.device)
            vectors = embed_users(self.kept, self.items, items, users, windows[users],
                                  self.device)
            step = max(1, SCORE_CELLS // max(len(items), 1))
            total = 0.0
            for start in range(0, len(users), step):
                rows = users[start:start + step]
                scores = masked_scores(vectors[start:start + step] @ items.T, train[rows])
                total += ndcg_at_k(scores, validation[rows], k) * len(rows)
            return total / max(len(users), 1)

        return validate


@torch.no_grad()
def embed_items(net: TwoTowerNet, items: dict[str, torch.Tensor], has_id: torch.Tensor,
                device: str, rows: torch.Tensor | None = None) -> np.ndarray:
    """Unit vectors of items (all, or ``rows``), id embedding only where ``has_id``."""
    net.eval()
    n = len(items["cat"]) if rows is None else len(rows)
    out = []
    for start in range(0, n, CHUNK):
        idx = torch.arange(start, min(start + CHUNK, n), device=device)
        if rows is not None:
            idx = rows[idx]
        ids = torch.where(has_id[idx], idx, torch.full_like(idx, net.sizes.n_items))
        with autocast(device):
            out.append(net.item(ids, take(items, idx)).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, net.item_id.embedding_dim),
                                                     dtype=np.float32)


@torch.no_grad()
def embed_users(net: TwoTowerNet, items: dict[str, torch.Tensor], item_vectors: np.ndarray,
                user_codes: np.ndarray, windows: np.ndarray, device: str) -> np.ndarray:
    """Unit vectors of known users from their history windows (codes, -1 padded)."""
    net.eval()
    out = []
    vectors = torch.as_tensor(item_vectors, device=device)
    step = CHUNK // 8
    for start in range(0, len(user_codes), step):
        window = torch.as_tensor(windows[start:start + step], device=device)
        users = torch.as_tensor(user_codes[start:start + step], device=device)
        valid = window >= 0
        unique, inverse = torch.unique(window.clamp(min=0), return_inverse=True)
        pooling = pooling_matrix(valid, inverse, len(unique))
        with autocast(device):
            got = net.user(users, pooling, vectors[unique], items["cat"][unique])
        out.append(got.float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, vectors.shape[1]), dtype=np.float32)


@torch.no_grad()
def embed_history(net: TwoTowerNet, user_code: int | None, history: np.ndarray,
                  paths: np.ndarray, device: str) -> np.ndarray:
    """One user's unit vector from history item vectors (N x d) and their paths (N x D)."""
    net.eval()
    n_users = net.sizes.n_users
    ids = torch.tensor([n_users if user_code is None else user_code], device=device)
    # one user: plain means, not the sparse pooling matrix (the same values, faster)
    pooled = torch.as_tensor(history, dtype=torch.float32, device=device).mean(dim=0)
    nodes = torch.as_tensor(paths, dtype=torch.long, device=device)
    affinity = net.user_cat(nodes).float().mean(dim=0)
    with autocast(device):
        return net.user_pooled(ids, pooled[None], affinity[None]).float().cpu().numpy()[0]
