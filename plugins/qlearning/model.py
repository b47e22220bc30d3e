"""The DQN (Mnih et al. 2015) over a learned state, with the item as the action input.

``Q(s, a)`` is one network evaluated per (state, candidate) pair, so any catalogue
item can be scored: the state is the user's session stage (visit bucket, engagement
in this visit, focus, has-interest), the interest-weighted sum of learned leaf
embeddings and the mean embedding of the recently engaged leaves; the action is the
item's leaf embedding and its features (:meth:`ShopEncoder.item_features`, which
include the same-leaf items above it in the list). A list's value decomposes over
positions as in the tabular model (:mod:`.tabular`), and the loss is the squared error
of each position's share of the target ``r + gamma Q_target(s', list')``, with the two
stabilisers of the paper: an experience replay buffer sampled uniformly, and a target
network copied from the online one every ``target_update`` gradient steps. ``list'``
is the list the online network would show in ``s'`` when the transition was stored
(chosen by the online network, valued by the target one, as in double DQN, van
Hasselt et al. 2016).

Rewards are divided by ``reward_scale`` (purchases are worth the item's price), so
the network's outputs stay near one; Q values are reported in reward units.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from recsdk_plugins.qlearning.features import ITEM_DIM, RECENT, STATE_DIM, ShopEncoder, UserState
from torch import nn


class QNetwork(nn.Module):
    """Q(s, a) for a batch of states, each with a set of candidate items."""

    def __init__(self, n_leaves: int, embedding: int = 16, hidden: int = 64) -> None:
        super().__init__()
        self.n_leaves = n_leaves
        # the last row is padding for "no recent leaf"
        self.leaf = nn.Embedding(n_leaves + 1, embedding, padding_idx=n_leaves)
        width = STATE_DIM + 4 * embedding + ITEM_DIM
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.ReLU(),
                                 nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, state: torch.Tensor, interest: torch.Tensor, recent: torch.Tensor,
                item_leaf: torch.Tensor, item_features: torch.Tensor) -> torch.Tensor:
        """``state`` B x STATE_DIM, ``interest`` B x leaves, ``recent`` B x RECENT leaf
        codes (n_leaves: none), ``item_leaf`` B x M, ``item_features`` B x M x
        ITEM_DIM: Q values B x M."""
        table = self.leaf.weight[:self.n_leaves]
        taste = interest @ table                                        # B x E
        mask = (recent < self.n_leaves).float().unsqueeze(-1)
        recent_mean = (self.leaf(recent) * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        items = self.leaf(item_leaf)                                    # B x M x E
        m = item_leaf.shape[1]
        user = torch.cat([state, taste, recent_mean], dim=1).unsqueeze(1).expand(-1, m, -1)
        x = torch.cat([user, items, items * taste.unsqueeze(1), item_features], dim=2)
        return self.mlp(x).squeeze(-1)


class ReplayBuffer:
    """A ring of transitions as fixed-size arrays (no Python objects, no pickle)."""

    def __init__(self, capacity: int, n_leaves: int, k: int) -> None:
        self.capacity, self.size, self.cursor = capacity, 0, 0
        self.n_leaves, self.k = n_leaves, k
        z = np.zeros
        self.arrays: dict[str, np.ndarray] = {}
        for prefix in ("", "next_"):
            width = k
            self.arrays[prefix + "state"] = z((capacity, STATE_DIM), np.float32)
            self.arrays[prefix + "interest"] = z((capacity, n_leaves), np.float32)
            self.arrays[prefix + "recent"] = z((capacity, RECENT), np.int64)
            self.arrays[prefix + "leaf"] = z((capacity, width), np.int64)
            self.arrays[prefix + "features"] = z((capacity, width, ITEM_DIM), np.float32)
            self.arrays[prefix + "mask"] = z((capacity, width), bool)
        self.arrays["rewards"] = z((capacity, k), np.float32)
        self.arrays["alive"] = z(capacity, np.float32)

    def push(self, row: dict[str, np.ndarray]) -> None:
        i = self.cursor
        for key, value in row.items():
            target = self.arrays[key][i]
            if target.ndim == 0:
                self.arrays[key][i] = value
                continue
            target[...] = self.n_leaves if key.endswith("recent") else 0
            target[tuple(slice(0, s) for s in np.shape(value))] = value
        self.cursor = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(self, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        rows = rng.integers(self.size, size=n)
        return {key: a[rows] for key, a in self.arrays.items()}


class DQNLearner:
    """Online and target networks, a replay buffer, Adam; epsilon lives in the policy."""

    def __init__(self, encoder: ShopEncoder, weights: np.ndarray, *, gamma: float,
                 learning_rate: float, seed: int, device: str = "cpu", embedding: int = 16,
                 hidden: int = 64, replay_size: int = 10_000, batch_size: int = 64,
                 train_every: int = 2, target_update: int = 200,
                 reward_scale: float = 1.0) -> None:
        self.encoder = encoder
        self.weights = torch.as_tensor(np.asarray(weights, np.float32), device=device)
        self.k = len(weights)
        self.gamma, self.device = float(gamma), device
        self.batch_size, self.train_every = batch_size, train_every
        self.target_update, self.reward_scale = target_update, float(reward_scale)
        torch.manual_seed(seed)
        self.net = QNetwork(encoder.n_leaves, embedding, hidden).to(device)
        self.target = QNetwork(encoder.n_leaves, embedding, hidden).to(device)
        self.target.load_state_dict(self.net.state_dict())
        self.target.eval()
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=learning_rate)
        self.buffer = ReplayBuffer(replay_size, encoder.n_leaves, self.k)
        self.rng = np.random.default_rng([seed, 2])
        self.pushed = 0
        self.updates = 0
        self.losses: list[float] = []

    # ---- encoding --------------------------------------------------------------------

    def _row(self, prefix: str, state: UserState, items: np.ndarray,
             above: np.ndarray) -> dict[str, np.ndarray]:
        enc = self.encoder
        return {prefix + "state": enc.state_vector(state),
                prefix + "interest": state.interest.astype(np.float32),
                prefix + "recent": state.recent,
                prefix + "leaf": enc.item_leaf[items],
                prefix + "features": enc.item_features(state, items, above),
                prefix + "mask": np.ones(len(items), dtype=bool)}

    def _tensors(self, batch: dict[str, np.ndarray], prefix: str) -> list[torch.Tensor]:
        return [torch.as_tensor(batch[prefix + key], device=self.device)
                for key in ("state", "interest", "recent", "leaf", "features")]

    # ---- the learner protocol --------------------------------------------------------

    def q(self, state: UserState, items: np.ndarray, above: np.ndarray) -> np.ndarray:
        row = self._row("", state, np.asarray(items, dtype=np.int64), above)
        batch = {key: value[None] for key, value in row.items()}
        recent = np.full((1, RECENT), self.encoder.n_leaves, dtype=np.int64)
        recent[0, :len(state.recent)] = state.recent
        batch["recent"] = recent
        self.net.eval()
        with torch.no_grad():
            out = self.net(*self._tensors(batch, ""))[0]
        return out.float().cpu().numpy().astype(np.float64) * self.reward_scale

    def learn(self, state: UserState, slate: np.ndarray, rewards: np.ndarray,
              next_state: UserState | None, next_slate: np.ndarray | None) -> None:
        slate = np.asarray(slate, dtype=np.int64)
        row = self._row("", state, slate, self.encoder.list_above(slate))
        row["rewards"] = np.asarray(rewards, np.float32) / self.reward_scale
        row["alive"] = np.float32(next_state is not None and next_slate is not None
                                  and len(next_slate) > 0)
        if row["alive"]:
            nxt = np.asarray(next_slate, dtype=np.int64)
            row.update(self._row("next_", next_state, nxt, self.encoder.list_above(nxt)))
        else:
            row.update({"next_state": np.zeros(0, np.float32),
                        "next_interest": np.zeros(0, np.float32),
                        "next_recent": np.zeros(0, np.int64),
                        "next_leaf": np.zeros(0, np.int64),
                        "next_features": np.zeros((0, ITEM_DIM), np.float32),
                        "next_mask": np.zeros(0, bool)})
        self.buffer.push(row)
        self.pushed += 1
        if self.pushed % self.train_every == 0 and self.buffer.size >= self.batch_size:
            self.losses.append(self.train_step())

    def train_step(self) -> float:
        """One Adam step on a replayed batch; the target network follows every
        ``target_update`` steps."""
        batch = self.buffer.sample(self.batch_size, self.rng)
        w = self.weights
        with torch.no_grad():
            q_next = self.target(*self._tensors(batch, "next_"))
            mask = torch.as_tensor(batch["next_mask"], device=self.device).float()
            next_value = (q_next * mask) @ w[:q_next.shape[1]]
            alive = torch.as_tensor(batch["alive"], device=self.device)
        self.net.train()
        q = self.net(*self._tensors(batch, ""))                        # B x k
        slot = torch.as_tensor(batch["mask"], device=self.device).float()
        wk = w[:q.shape[1]] * slot
        rewards = torch.as_tensor(batch["rewards"], device=self.device)
        shares = rewards + wk / wk.sum(1, keepdim=True).clamp(min=1e-9) \
            * (self.gamma * alive * next_value).unsqueeze(1)
        loss = (((shares - wk * q) ** 2) * slot).sum(1).mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(self.net.parameters(), 10.0)
        self.optimizer.step()
        self.updates += 1
        if self.updates % self.target_update == 0:
            self.target.load_state_dict(self.net.state_dict())
        return float(loss.detach())

    def state_dict(self) -> dict[str, Any]:
        return {k: v.detach().cpu().clone() for k, v in self.net.state_dict().items()}

    def load(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state)
        self.target.load_state_dict(state)
        self.net.eval()
