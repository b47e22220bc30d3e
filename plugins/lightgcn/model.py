"""LightGCN's model: embeddings propagated over the normalised user-item graph.

He et al. (SIGIR 2020), "LightGCN: Simplifying and Powering Graph Convolution Network
for Recommendation". Users and items are the nodes of one bipartite graph with
adjacency ``A = [[0, R], [R^T, 0]]`` (``R`` the users x items matrix of positive
interactions: binary on implicit data as in the paper, else the event weighting's
cells), normalised symmetrically, ``A_hat = D^-1/2 A D^-1/2``. Layer
``k + 1`` is ``E^(k+1) = A_hat E^(k)`` (no weights, no non-linearity); the final
embedding is the mean of layers 0..K, and a score is an inner product of a final user
and item embedding. Only the layer-0 embeddings are parameters, trained with the BPR
loss plus an L2 penalty on the layer-0 embeddings of each mini-batch (the paper's
``lambda ||E^(0)||^2``, scaled per triple as in the authors' code).

Everything random (initialisation, shuffling, negatives) is drawn from the run's seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

#: negatives that hit a positive are redrawn this many times (then kept: with few
#: positives per user the leftovers are a vanishing share)
NEGATIVE_REDRAWS = 10


def normalized_adjacency(matrix: sp.csr_matrix) -> sp.coo_matrix:
    """``D^-1/2 A D^-1/2`` of the bipartite graph whose edges are ``matrix``'s cells.

    Nodes are users first, then items. Edge weights are the weighted matrix's cells
    (all 1 on implicit data such as MovieLens, the paper's binary graph; a purchase
    outweighs a view in a shop's), ``D`` the weighted degrees; an isolated node gets
    a zero row.
    """
    r = sp.csr_matrix(matrix, dtype=np.float32)
    r.data = np.clip(r.data, 0, None)
    r.eliminate_zeros()
    n = r.shape[0] + r.shape[1]
    a = sp.bmat([[None, r], [r.T, None]], format="csr", dtype=np.float32) if r.nnz \
        else sp.csr_matrix((n, n), dtype=np.float32)
    degree = np.asarray(a.sum(axis=1)).ravel()
    inv_sqrt = np.zeros_like(degree)
    np.power(degree, -0.5, out=inv_sqrt, where=degree > 0)
    d = sp.diags(inv_sqrt.astype(np.float32))
    return sp.coo_matrix(d @ a @ d, dtype=np.float32)


def sparse_tensor(m: sp.coo_matrix, device: str) -> torch.Tensor:
    """A coalesced torch COO tensor of ``m`` on ``device``."""
    indices = torch.from_numpy(np.vstack([m.row, m.col]).astype(np.int64))
    values = torch.from_numpy(m.data.astype(np.float32))
    return torch.sparse_coo_tensor(indices, values, m.shape, device=device,
                                   check_invariants=False).coalesce()


class LightGCNModel(nn.Module):
    """Layer-0 embeddings and the propagation; scores are inner products."""

    def __init__(self, n_users: int, n_items: int, factors: int, layers: int,
                 adjacency: torch.Tensor) -> None:
        super().__init__()
        self.n_users, self.n_items, self.layers = n_users, n_items, layers
        self.user_embedding = nn.Parameter(torch.empty(n_users, factors))
        self.item_embedding = nn.Parameter(torch.empty(n_items, factors))
        # the paper's initialisation: N(0, 0.1^2)
        nn.init.normal_(self.user_embedding, std=0.1)
        nn.init.normal_(self.item_embedding, std=0.1)
        self.adjacency = adjacency

    def layer_embeddings(self) -> list[torch.Tensor]:
        """Embeddings of every node at layers 0..K (users first, then items)."""
        e = torch.cat([self.user_embedding, self.item_embedding], dim=0)
        out = [e]
        for _ in range(self.layers):
            e = torch.sparse.mm(self.adjacency, e)
            out.append(e)
        return out

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Final (mean over layers 0..K) user and item embeddings."""
        final = torch.stack(self.layer_embeddings(), dim=0).mean(dim=0)
        return final[:self.n_users], final[self.n_users:]

    def bpr_loss(self, users: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor,
                 regularization: float) -> torch.Tensor:
        """Mean -ln sigmoid(x_ui - x_uj) plus the L2 penalty on the triples' layer-0 rows."""
        user_final, item_final = self()
        u = user_final[users]
        x_ui = (u * item_final[positives]).sum(dim=1)
        x_uj = (u * item_final[negatives]).sum(dim=1)
        loss = nn.functional.softplus(x_uj - x_ui).mean()
        if regularization:
            reg = (self.user_embedding[users].pow(2).sum()
                   + self.item_embedding[positives].pow(2).sum()
                   + self.item_embedding[negatives].pow(2).sum()) / (2 * len(users))
            loss = loss + regularization * reg
        return loss


@dataclass
class TripleSampler:
    """(user, positive, negative) triples of an epoch, vectorised and seeded.

    Every positive cell is used once per epoch in a random order; its negative is
    drawn uniformly from the items, redrawn (vectorised, a few rounds) where it hits
    one of the user's positives.
    """

    matrix: sp.csr_matrix
    seed: int

    def __post_init__(self) -> None:
        m = sp.csr_matrix(self.matrix > 0)
        m.sort_indices()
        self.n_items = m.shape[1]
        self.users = np.repeat(np.arange(m.shape[0], dtype=np.int64), np.diff(m.indptr))
        self.items = m.indices.astype(np.int64)
        # row-major keys of the positive cells, sorted (CSR with sorted indices)
        self.keys = self.users * self.n_items + self.items
        self.rng = np.random.default_rng(self.seed)

    def __len__(self) -> int:
        return len(self.users)

    def is_positive(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        keys = users * self.n_items + items
        pos = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
        return self.keys[pos] == keys

    def epoch(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        order = self.rng.permutation(len(self.users))
        users, positives = self.users[order], self.items[order]
        negatives = self.rng.integers(0, self.n_items, len(users))
        for _ in range(NEGATIVE_REDRAWS):
            hit = np.flatnonzero(self.is_positive(users, negatives))
            if not len(hit):
                break
            negatives[hit] = self.rng.integers(0, self.n_items, len(hit))
        return users, positives, negatives
