"""Mult-VAE's network: an MLP encoder to a Gaussian latent, an MLP decoder to logits.

Liang, Krishnan, Hoffman & Jebara (WWW 2018), "Variational Autoencoders for
Collaborative Filtering". A user's row ``x`` (users x items, the event weighting's
cells) is L2-normalised and passed through dropout (training only), then the encoder
``I -> h_1 -> ... -> 2d`` (tanh between layers) gives the mean ``mu`` and log-variance
of ``q(z | x)``; the decoder ``d -> ... -> h_1 -> I`` (the encoder's sizes mirrored)
maps a latent ``z`` to logits over all items. The loss is the negative annealed ELBO

    -sum_i x_i log softmax(f(z))_i + beta * KL(q(z | x) || N(0, I))

with ``z = mu + sigma * eps`` while training and ``z = mu`` when scoring. ``beta``
grows linearly from 0 over the first ``anneal_steps`` gradient steps and stays at
``anneal_cap`` after (:func:`annealed_beta`).

This module imports torch; the plugin imports it only once torch is required.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise
from typing import cast

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn
from torch.nn import functional as F

#: standard deviation of the bias initialisation (the authors' code)
BIAS_STD = 1e-3


@dataclass(frozen=True)
class Architecture:
    """What it takes to rebuild the network from saved weights."""

    n_items: int
    hidden: tuple[int, ...]
    latent: int
    dropout: float

    def as_array(self) -> np.ndarray:
        """``[n_items, latent, dropout, *hidden]`` (stored with the run's state)."""
        return np.array([self.n_items, self.latent, self.dropout, *self.hidden],
                        dtype=np.float64)

    @classmethod
    def from_array(cls, a: np.ndarray) -> Architecture:
        a = np.asarray(a, dtype=np.float64)
        return cls(int(a[0]), tuple(int(h) for h in a[3:]), int(a[1]), float(a[2]))


def _mlp(dims: list[int]) -> nn.Sequential:
    """Linear layers through ``dims`` with tanh between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (d_in, d_out) in enumerate(pairwise(dims)):
        layers.append(nn.Linear(d_in, d_out))
        if i < len(dims) - 2:
            layers.append(nn.Tanh())
    return nn.Sequential(*layers)


class MultVAEModel(nn.Module):
    """Encoder to (mu, log-variance), decoder to item logits."""

    def __init__(self, arch: Architecture) -> None:
        super().__init__()
        self.arch = arch
        sizes = [arch.n_items, *arch.hidden]
        self.encoder = _mlp([*sizes, 2 * arch.latent])
        self.decoder = _mlp([arch.latent, *reversed(sizes)])
        self.drop = nn.Dropout(arch.dropout)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_normal_(module.weight)
                nn.init.normal_(module.bias, std=BIAS_STD)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance of q(z | x) for rows ``x`` (dropout when training)."""
        h = self.drop(F.normalize(x, dim=1))
        out = self.encoder(h)
        return out[:, :self.arch.latent], out[:, self.arch.latent:]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Item logits, mu and log-variance; a sampled latent only when training."""
        mu, logvar = self.encode(x)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if self.training else mu
        return self.decoder(z), mu, logvar

    def loss(self, x: torch.Tensor, beta: float) -> torch.Tensor:
        """Mean over the batch of the multinomial log-loss plus beta x KL."""
        logits, mu, logvar = self(x)
        nll = -(F.log_softmax(logits.float(), dim=1) * x).sum(dim=1).mean()
        mu, logvar = mu.float(), logvar.float()
        kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(dim=1).mean()
        return nll + beta * kl

    def item_vectors(self) -> torch.Tensor:
        """The decoder's output-layer weights: one vector per item (items x h_1)."""
        return cast(nn.Linear, self.decoder[-1]).weight


def annealed_beta(step: int, cap: float, anneal_steps: int) -> float:
    """KL weight after ``step`` gradient steps: linear from 0 to ``cap`` over
    ``anneal_steps`` steps, then ``cap`` (0 steps: ``cap`` from the start)."""
    if anneal_steps <= 0:
        return cap
    return cap * min(1.0, step / anneal_steps)


def dense_rows(matrix: sp.csr_matrix, rows: np.ndarray, device: str) -> torch.Tensor:
    """The ``rows`` of a sparse matrix as a dense float32 tensor on ``device``."""
    block = np.asarray(matrix[rows].toarray(), dtype=np.float32)
    return torch.from_numpy(block).to(device)


@torch.no_grad()
def score_rows(model: MultVAEModel, matrix: sp.csr_matrix, device: str = "cpu",
               chunk: int = 1024) -> np.ndarray:
    """Logits (users x items, float32) of ``matrix``'s rows from ``z = mu``."""
    model.eval()
    out = np.empty(matrix.shape, dtype=np.float32)
    for start in range(0, matrix.shape[0], chunk):
        stop = min(start + chunk, matrix.shape[0])
        logits, _, _ = model(dense_rows(matrix, np.arange(start, stop), device))
        out[start:stop] = logits.float().cpu().numpy()
    return out
