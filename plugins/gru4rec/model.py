"""GRU4Rec's network (torch imported lazily).

Hidasi, Karatzoglou, Baltrunas & Tikk (ICLR 2016), "Session-based Recommendations with
Recurrent Neural Networks", with the choices of Hidasi & Karatzoglou (CIKM 2018),
"Recurrent Neural Networks with Top-k Gains for Session-based Recommendations", as the
official implementation makes them by default: the input embedding of an item is its
output embedding (the "constrained embedding", so the hidden size is the embedding
size), dropout on the embedded input and on the GRU's output, and the next item's score
is the dot product of the hidden state with the item's output embedding plus an item
bias.

Item code ``c`` is embedding row ``c + 1``; row 0 is padding, kept at zero. Windows are
left-padded (:mod:`recsdk_plugins.sequential`), and the GRU has no bias terms, so on a
zero input from a zero state it stays exactly at zero: padding before the first real
item leaves the state the first item sees at zero, as if the window started there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from recsdk_plugins.sequential import PAD


@dataclass(frozen=True)
class Architecture:
    """What it takes to rebuild the network from saved weights."""

    n_items: int
    dim: int
    layers: int
    max_len: int
    dropout: float

    def as_array(self) -> np.ndarray:
        return np.array([self.n_items, self.dim, self.layers, self.max_len, self.dropout],
                        dtype=np.float64)

    @classmethod
    def from_array(cls, a: np.ndarray) -> Architecture:
        a = np.asarray(a, dtype=np.float64)
        return cls(int(a[0]), int(a[1]), int(a[2]), int(a[3]), float(a[4]))


def build_network(arch: Architecture) -> Any:
    """The GRU4Rec ``nn.Module`` for ``arch`` (defined here so torch loads lazily)."""
    import torch
    from torch import nn

    class GRU4RecNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            d = arch.dim
            self.items = nn.Embedding(arch.n_items + 1, d, padding_idx=PAD)
            self.bias = nn.Parameter(torch.zeros(arch.n_items))
            self.gru = nn.GRU(d, d, num_layers=arch.layers, bias=False, batch_first=True,
                              dropout=arch.dropout if arch.layers > 1 else 0.0)
            self.drop = nn.Dropout(arch.dropout)
            # uniform in +-sqrt(6 / (fan_in + fan_out)), the official implementation's
            # initialisation (a gate block of the GRU counted as one matrix)
            bound = math.sqrt(6.0 / (arch.n_items + d))
            nn.init.uniform_(self.items.weight, -bound, bound)
            with torch.no_grad():
                self.items.weight[PAD].zero_()
            gate = math.sqrt(6.0 / (d + d))
            for name, weight in self.gru.named_parameters():
                if name.startswith("weight"):
                    nn.init.uniform_(weight, -gate, gate)

        def hidden(self, seq: torch.Tensor) -> torch.Tensor:
            """Hidden states (batch x len x dim) of left-padded item sequences."""
            x = self.drop(self.items(seq))
            h, _ = self.gru(x)
            return self.drop(h)

        def logits(self, h: torch.Tensor) -> torch.Tensor:
            """Scores of every item (code order, padding excluded) for hidden states."""
            return h @ self.items.weight[1:].T + self.bias

        def pair_scores(self, h: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
            """Scores of the given embedding rows, one per hidden state."""
            return (h * self.items(rows)).sum(-1) + self.bias[rows - 1]

    return GRU4RecNet()
