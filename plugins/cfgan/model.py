"""CFGAN's networks and its adversarial training step (the ZP variant).

Chae, Kang, Kim & Lee (CIKM 2018), "CFGAN: A Generic Collaborative Filtering Framework
based on Generative Adversarial Networks". The generator ``G`` maps a user's purchase
vector ``c_u`` (the condition) to a real-valued vector ``r_hat_u`` over all items; the
discriminator ``D`` tells a real vector ``r_u`` from a generated one, both given
``c_u``. Here ``r_u = c_u`` (the user-based CFGAN of the paper), in [0, 1].

Generating the vector itself is trivial for ``G`` (output ones everywhere and the
masked vector equals the real one), so CFGAN's ZP variant changes what ``D`` sees and
what ``G`` is asked:

* partial masking (PM): ``D`` sees ``r_hat_u * (e_u + k_u)``, ``e_u`` the user's items
  and ``k_u`` a fresh random draw of a ``pm_share`` of the items the user did not
  take, so ``G`` must also keep those low;
* zero reconstruction (ZR): ``G``'s loss adds ``alpha * sum_j r_hat_uj^2`` over
  another random draw of a ``zr_share`` of the user's unseen items.

A user's score for an item is ``r_hat_uj``: the generator is the recommender, and it
needs nothing but the user's current row, so a user unseen at training is served.
Everything random (initialisation, epoch order, the masks) is drawn from seeded
generators.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn


def _mlp(sizes: Sequence[int]) -> nn.Sequential:
    """Fully connected layers with sigmoid activations between them (the authors'
    choice); the last layer is linear (its squashing is the caller's)."""
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(pairwise(sizes)):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(nn.Sigmoid())
    return nn.Sequential(*layers)


class Generator(nn.Module):
    """``c_u`` (items) -> hidden layers -> sigmoid scores over the items."""

    def __init__(self, n_items: int, hidden: Sequence[int]) -> None:
        super().__init__()
        self.net = _mlp([n_items, *hidden, n_items])

    def forward(self, condition: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.net(condition))


class Discriminator(nn.Module):
    """``[vector, c_u]`` (2 x items) -> hidden layers -> one logit (real or generated)."""

    def __init__(self, n_items: int, hidden: Sequence[int]) -> None:
        super().__init__()
        self.net = _mlp([2 * n_items, *hidden, 1])

    def forward(self, vector: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([vector, condition], dim=1)).squeeze(1)


class CFGANModel(nn.Module):
    """Both networks in one module, so one ``state_dict`` holds a training state."""

    def __init__(self, n_items: int, generator_layers: Sequence[int],
                 discriminator_layers: Sequence[int]) -> None:
        super().__init__()
        self.generator = Generator(n_items, generator_layers)
        self.discriminator = Discriminator(n_items, discriminator_layers)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)


def purchase_vectors(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """Rows scaled into [0, 1] by their largest cell: binary on implicit data (the
    paper's purchase vectors), graded by the event weighting in a shop."""
    m = sp.csr_matrix(matrix, dtype=np.float32, copy=True)
    m.data = np.clip(m.data, 0, None)
    m.eliminate_zeros()
    top = m.max(axis=1).toarray().ravel()
    scale = np.divide(1.0, top, out=np.zeros_like(top), where=top > 0)
    return sp.csr_matrix(sp.diags(scale) @ m, dtype=np.float32)


def dense_rows(rows: sp.csr_matrix, device: str | torch.device) -> torch.Tensor:
    """A float32 dense tensor of sparse rows on ``device``."""
    return torch.from_numpy(rows.toarray().astype(np.float32, copy=False)).to(device)


def negative_mask(real: torch.Tensor, share: float, generator: torch.Generator) -> torch.Tensor:
    """A random ``share`` of each row's zero cells (each drawn independently), as 0/1."""
    draw = torch.rand(real.shape, generator=generator, device=generator.device)
    draw = draw.to(real.device)
    return ((draw < share) & (real <= 0)).to(real.dtype)


class AdversarialTrainer:
    """One CFGAN epoch: ``discriminator_steps`` passes training ``D``, then
    ``generator_steps`` passes training ``G``, over the users in a seeded order."""

    def __init__(self, model: CFGANModel, vectors: sp.csr_matrix, *, seed: int,
                 device: str, batch_size: int, zr_share: float, pm_share: float,
                 zr_weight: float, generator_lr: float, discriminator_lr: float,
                 weight_decay: float, discriminator_steps: int, generator_steps: int) -> None:
        self.model, self.device = model, device
        users = np.flatnonzero(np.diff(vectors.indptr) > 0)
        self.users = users
        self.vectors = vectors
        self.batch_size = batch_size
        self.zr_share, self.pm_share, self.zr_weight = zr_share, pm_share, zr_weight
        self.d_steps, self.g_steps = discriminator_steps, generator_steps
        self.rng = np.random.default_rng(seed)
        self.masks = torch.Generator(device="cpu").manual_seed(int(seed) + 1)
        self.g_opt = torch.optim.Adam(model.generator.parameters(), lr=generator_lr,
                                      weight_decay=weight_decay)
        self.d_opt = torch.optim.Adam(model.discriminator.parameters(), lr=discriminator_lr,
                                      weight_decay=weight_decay)
        self.bce = nn.BCEWithLogitsLoss()

    def batches(self) -> list[np.ndarray]:
        order = self.rng.permutation(self.users)
        return [order[i:i + self.batch_size] for i in range(0, len(order), self.batch_size)]

    def partial_mask(self, real: torch.Tensor) -> torch.Tensor:
        """``e_u + k_u``: the user's items and a fresh draw of unseen ones."""
        return (real > 0).to(real.dtype) + negative_mask(real, self.pm_share, self.masks)

    def discriminator_step(self, real: torch.Tensor) -> float:
        model = self.model
        with torch.no_grad():
            fake = model.generator(real) * self.partial_mask(real)
        d_real = model.discriminator(real, real)
        d_fake = model.discriminator(fake, real)
        loss = (self.bce(d_real, torch.ones_like(d_real))
                + self.bce(d_fake, torch.zeros_like(d_fake)))
        self.d_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.d_opt.step()
        return float(loss.detach())

    def generator_step(self, real: torch.Tensor) -> float:
        model = self.model
        generated = model.generator(real)
        d_fake = model.discriminator(generated * self.partial_mask(real), real)
        loss = self.bce(d_fake, torch.ones_like(d_fake))
        if self.zr_weight > 0:
            zr = negative_mask(real, self.zr_share, self.masks)
            loss = loss + self.zr_weight * (generated.pow(2) * zr).sum(dim=1).mean()
        self.g_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.g_opt.step()
        return float(loss.detach())

    def epoch(self) -> float:
        """Train one epoch; the mean generator loss of its last pass."""
        for _ in range(self.d_steps):
            for users in self.batches():
                self.discriminator_step(dense_rows(self.vectors[users], self.device))
        total, count = 0.0, 0
        for _ in range(self.g_steps):
            total, count = 0.0, 0
            for users in self.batches():
                total += self.generator_step(dense_rows(self.vectors[users], self.device)) \
                    * len(users)
                count += len(users)
        return total / max(count, 1)


def generate(generator: Generator, rows: sp.csr_matrix, device: str = "cpu",
             chunk: int = 1024) -> np.ndarray:
    """Generated vectors (users x items, float32) for purchase-vector rows."""
    out = np.empty(rows.shape, dtype=np.float32)
    generator.eval()
    with torch.no_grad():
        for start in range(0, rows.shape[0], chunk):
            block = dense_rows(rows[start:start + chunk], device)
            out[start:start + chunk] = generator(block).float().cpu().numpy()
    return out
