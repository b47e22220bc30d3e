"""Linear contextual bandits over slates: LinUCB and linear Thompson sampling, pure numpy.

Both policies read one set of sufficient statistics (:class:`LinearStats`) of a ridge
regression of reward on context,

    A = lambda I + sum_t w_t x_t x_t^T,    b = sum_t r_t x_t,    theta = A^-1 b,

and fill a slate of ``k`` positions from ``n`` candidate rows ``X`` (n x d), slot by
slot. What they differ in is how they explore:

* :class:`LinUCB` (Li, Chu, Langford, Schapire 2010, "A contextual-bandit approach to
  personalized news article recommendation", WWW '10, algorithm 1) ranks by the upper
  confidence bound ``x^T theta + alpha sqrt(x^T A^-1 x)``; that rule is deterministic,
  so each slot is, with probability ``epsilon``, filled with a uniformly drawn remaining
  candidate instead, which keeps every candidate's propensity above zero for
  off-policy evaluation. A fixed ``epsilon`` costs a fixed share of every list forever
  (linear regret); with ``epsilon_decay_pulls`` = n0 > 0 the mix shrinks as the
  statistics grow, ``epsilon * sqrt(n0 / (n0 + pulls))``, so the exploration's total
  cost grows as the square root of the pulls (sublinear) while every propensity stays
  above zero.
* :class:`LinearThompson` (Agrawal and Goyal 2013, "Thompson sampling for contextual
  bandits with linear payoffs", ICML '13) draws ``theta ~ N(theta_hat, v^2 A^-1)`` and
  shows the ``k`` best candidates under that draw.

The propensity of a shown item at a position is the probability that the policy puts
that item at that position, given the statistics and candidates (a marginal over the
policy's own randomness, not conditional on the items above it). Neither policy has a
cheap closed form for it, so it is estimated by Monte Carlo: the policy's randomness is
drawn ``n_draws`` times, the first draw is the slate shown, and each propensity is the
share of draws that put the shown item at that position. The shown draw counts, so an
estimate is never 0 (at least ``1 / n_draws``, an upward bias of at most
``(1 - p) / n_draws``); a policy whose draws all agree reports exactly 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.linalg import solve_triangular


@dataclass
class LinearStats:
    """Sums of a weighted ridge regression; ``A`` and ``b`` add ``ridge`` on read.

    ``xx`` = sum w x x^T (d x d), ``rx`` = sum r x (d), ``pulls`` = sum w and
    ``reward`` = sum r, so that the state can be added to and merged by plain sums
    (what shared storage does with atomic increments).
    """

    xx: np.ndarray
    rx: np.ndarray
    pulls: float = 0.0
    reward: float = 0.0

    @classmethod
    def zeros(cls, dim: int) -> LinearStats:
        if dim < 1:
            raise ValueError(f"a context needs at least one feature, got dim={dim}")
        return cls(np.zeros((dim, dim)), np.zeros(dim))

    @property
    def dim(self) -> int:
        return len(self.rx)

    def add_pulls(self, X: np.ndarray, weights: np.ndarray | None = None) -> None:
        """A pull of each row of ``X`` (weight 1 each by default: see the plugin's
        ``position_discount`` for why a shown item may count less)."""
        X = np.atleast_2d(np.asarray(X, dtype=np.float64))
        w = np.ones(len(X)) if weights is None else np.asarray(weights, dtype=np.float64)
        self.xx += (X * w[:, None]).T @ X
        self.pulls += float(w.sum())

    def add_rewards(self, X: np.ndarray, rewards: np.ndarray) -> None:
        X = np.atleast_2d(np.asarray(X, dtype=np.float64))
        r = np.asarray(rewards, dtype=np.float64)
        self.rx += r @ X
        self.reward += float(r.sum())

    def to_vector(self) -> np.ndarray:
        """The flat layout shared storage keeps: xx (row-major), rx, pulls, reward."""
        return np.concatenate([self.xx.ravel(), self.rx, [self.pulls, self.reward]])

    @classmethod
    def from_vector(cls, vector: np.ndarray, dim: int) -> LinearStats:
        v = np.asarray(vector, dtype=np.float64)
        if v.shape != (vector_length(dim),):
            raise ValueError(f"bandit statistics of dimension {dim} need "
                             f"{vector_length(dim)} numbers, got shape {v.shape}")
        d2 = dim * dim
        return cls(v[:d2].reshape(dim, dim).copy(), v[d2:d2 + dim].copy(),
                   float(v[d2 + dim]), float(v[d2 + dim + 1]))

    def posterior(self, ridge: float) -> tuple[np.ndarray, np.ndarray]:
        """``theta_hat = A^-1 b`` and ``A^-1``, with ``A = ridge I + xx``."""
        A = self.xx + ridge * np.eye(self.dim)
        cov = np.linalg.inv(A)
        cov = (cov + cov.T) / 2  # exactly symmetric, for the Cholesky factor
        return cov @ self.rx, cov


def vector_length(dim: int) -> int:
    return dim * dim + dim + 2


def _check_inputs(X: np.ndarray, k: int, stats: LinearStats) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != stats.dim:
        raise ValueError(f"contexts must be an n x {stats.dim} array, got shape {X.shape}")
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    return X


def _propensities(slates: np.ndarray) -> np.ndarray:
    """Per position, the share of draws (rows) that agree with the first draw."""
    return (slates == slates[0]).mean(axis=0)


@dataclass(frozen=True)
class LinUCB:
    """LinUCB with an ``epsilon`` exploration mix per slot; see the module docstring."""

    alpha: float = 1.0
    epsilon: float = 0.1
    ridge: float = 1.0
    n_draws: int = 256
    epsilon_decay_pulls: float = 0.0

    def __post_init__(self) -> None:
        _check_params(alpha=self.alpha, ridge=self.ridge, n_draws=self.n_draws)
        if not 0.0 <= self.epsilon <= 1.0:
            raise ValueError(f"epsilon must be in [0, 1], got {self.epsilon}")
        if not self.epsilon_decay_pulls >= 0:
            raise ValueError(f"epsilon_decay_pulls must be at least 0, got "
                             f"{self.epsilon_decay_pulls}")

    def epsilon_at(self, pulls: float) -> float:
        """The exploration mix after ``pulls`` (weighted) pulls; see the module docstring."""
        n0 = self.epsilon_decay_pulls
        if n0 <= 0:
            return self.epsilon
        return self.epsilon * math.sqrt(n0 / (n0 + max(float(pulls), 0.0)))

    def scores(self, X: np.ndarray, stats: LinearStats) -> np.ndarray:
        """The upper confidence bound of each row of ``X``."""
        theta, cov = stats.posterior(self.ridge)
        width = np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", X, cov, X), 0.0))
        return X @ theta + self.alpha * width

    def select(self, X: np.ndarray, k: int, stats: LinearStats,
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Row indices of the slate (``min(k, n)`` of them) and their propensities."""
        X = _check_inputs(X, k, stats)
        n = len(X)
        k = min(k, n)
        if n == 0:
            return np.zeros(0, np.int64), np.zeros(0)
        ucb = self.scores(X, stats)
        # greedy preference: highest bound first, ties in the candidates' order
        preference = np.empty(n)
        preference[np.lexsort((np.arange(n), -ucb))] = -np.arange(n, dtype=np.float64)
        epsilon = self.epsilon_at(stats.pulls)
        draws = self.n_draws if epsilon > 0 else 1
        slates = np.empty((draws, k), np.int64)
        taken = np.zeros((draws, n), bool)
        rows = np.arange(draws)
        for slot in range(k):
            explore = rng.random(draws) < epsilon
            uniform = np.where(taken, -np.inf, rng.random((draws, n))).argmax(axis=1)
            greedy = np.where(taken, -np.inf, preference).argmax(axis=1)
            pick = np.where(explore, uniform, greedy)
            slates[:, slot] = pick
            taken[rows, pick] = True
        return slates[0], _propensities(slates)


@dataclass(frozen=True)
class LinearThompson:
    """Linear Thompson sampling with posterior scale ``v``; see the module docstring."""

    v: float = 0.5
    ridge: float = 1.0
    n_draws: int = 256

    def __post_init__(self) -> None:
        _check_params(v=self.v, ridge=self.ridge, n_draws=self.n_draws)

    def sample_thetas(self, stats: LinearStats, n: int, rng: np.random.Generator
                      ) -> np.ndarray:
        """``n`` draws of theta from the posterior N(theta_hat, v^2 A^-1), one per row."""
        theta, _ = stats.posterior(self.ridge)
        # A = L L^T, so L^-T z ~ N(0, A^-1): factor A (well conditioned: ridge > 0)
        # rather than its inverse, which loses precision once pulls are many
        lower = np.linalg.cholesky(stats.xx + self.ridge * np.eye(stats.dim))
        z = rng.standard_normal((stats.dim, n))
        return theta + self.v * solve_triangular(lower.T, z, lower=False).T

    def select(self, X: np.ndarray, k: int, stats: LinearStats,
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        X = _check_inputs(X, k, stats)
        n = len(X)
        k = min(k, n)
        if n == 0:
            return np.zeros(0, np.int64), np.zeros(0)
        sampled = X @ self.sample_thetas(stats, self.n_draws, rng).T  # n x draws
        # best k per draw, ties in the candidates' order (stable sort of -score)
        slates = np.argsort(-sampled.T, axis=1, kind="stable")[:, :k]
        return slates[0], _propensities(slates)


def _check_params(**values: float) -> None:
    for name, value in values.items():
        if name == "n_draws":
            if int(value) != value or value < 1:
                raise ValueError(f"n_draws must be a positive integer, got {value}")
        elif name == "alpha":
            if not value >= 0:
                raise ValueError(f"alpha must be >= 0, got {value}")
        elif not value > 0:
            raise ValueError(f"{name} must be > 0, got {value}")
