"""SASRec's network (torch imported lazily).

Kang & McAuley (ICDM 2018), "Self-Attentive Sequential Recommendation": item
embeddings plus learned position embeddings, a stack of causal self-attention blocks
(pre-layer-norm, residual, point-wise feed-forward, dropout), and the next item's score
as the dot product of the last hidden state with the (shared) item embeddings.

Item code ``c`` of the dataset is embedding row ``c + 1``; row 0 is padding. Sequences
are left-padded to ``max_len`` so the newest item is always at the last position. The
sequence bookkeeping (windows, padding) is :mod:`recsdk_plugins.sequential`'s; it is
re-exported here for the code that imported it from this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from recsdk_plugins.sequential import PAD, padded, training_windows, user_sequences

__all__ = ["PAD", "Architecture", "build_network", "padded", "training_windows",
           "user_sequences"]


@dataclass(frozen=True)
class Architecture:
    """What it takes to rebuild the network from saved weights."""

    n_items: int
    dim: int
    blocks: int
    heads: int
    max_len: int
    dropout: float

    def as_array(self) -> np.ndarray:
        return np.array([self.n_items, self.dim, self.blocks, self.heads, self.max_len,
                         self.dropout], dtype=np.float64)

    @classmethod
    def from_array(cls, a: np.ndarray) -> Architecture:
        a = np.asarray(a, dtype=np.float64)
        return cls(int(a[0]), int(a[1]), int(a[2]), int(a[3]), int(a[4]), float(a[5]))


def build_network(arch: Architecture) -> Any:
    """The SASRec ``nn.Module`` for ``arch`` (defined here so torch loads lazily)."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    class Block(nn.Module):
        """Pre-LN causal self-attention then a point-wise feed-forward, both residual."""

        def __init__(self) -> None:
            super().__init__()
            d = arch.dim
            self.norm1 = nn.LayerNorm(d)
            self.qkv = nn.Linear(d, 3 * d)
            self.out = nn.Linear(d, d)
            self.norm2 = nn.LayerNorm(d)
            self.ff1 = nn.Linear(d, d)
            self.ff2 = nn.Linear(d, d)
            self.drop = nn.Dropout(arch.dropout)

        def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            b, n, d = x.shape
            h = arch.heads
            q, k, v = self.qkv(self.norm1(x)).view(b, n, 3, h, d // h).permute(2, 0, 3, 1, 4)
            att = F.scaled_dot_product_attention(
                q, k, v, attn_mask=mask, dropout_p=arch.dropout if self.training else 0.0)
            x = x + self.drop(self.out(att.transpose(1, 2).reshape(b, n, d)))
            y = self.ff2(self.drop(F.relu(self.ff1(self.norm2(x)))))
            return x + self.drop(y)

    class SASRecNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.items = nn.Embedding(arch.n_items + 1, arch.dim, padding_idx=PAD)
            self.positions = nn.Embedding(arch.max_len, arch.dim)
            self.blocks = nn.ModuleList(Block() for _ in range(arch.blocks))
            self.norm = nn.LayerNorm(arch.dim)
            self.drop = nn.Dropout(arch.dropout)
            nn.init.normal_(self.items.weight, std=arch.dim ** -0.5)
            with torch.no_grad():
                self.items.weight[PAD].zero_()
            nn.init.normal_(self.positions.weight, std=arch.dim ** -0.5)

        def hidden(self, seq: torch.Tensor) -> torch.Tensor:
            """Hidden states (batch x len x dim) of left-padded item sequences."""
            n = seq.shape[1]
            real = seq != PAD
            x = self.items(seq) * arch.dim ** 0.5
            x = x + self.positions.weight[arch.max_len - n:][None]
            x = self.drop(x) * real[..., None]
            causal = torch.ones(n, n, dtype=torch.bool, device=seq.device).tril()
            # a query may see earlier real items and always itself (so no row of the
            # attention is empty, which would give NaN on padding positions)
            mask = (causal[None] & real[:, None, :]) | torch.eye(
                n, dtype=torch.bool, device=seq.device)[None]
            for block in self.blocks:
                x = block(x, mask[:, None]) * real[..., None]
            return self.norm(x)

        def logits(self, h: torch.Tensor) -> torch.Tensor:
            """Scores of every item (code order, padding excluded) for hidden states."""
            return h @ self.items.weight[1:].T

        def pair_scores(self, h: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
            """Scores of the given embedding rows, one per hidden state."""
            return (h * self.items(rows)).sum(-1)

    return SASRecNet()
