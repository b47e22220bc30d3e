"""Off-policy estimators of a ranking policy's value from logged lists with propensities.

The item-position model of Li et al. (2018), "Offline Evaluation of Ranking Policies
with Click Models" (the independent IPS of the Open Bandit Pipeline): the reward at a
position depends only on the context, the item and the position, so a list's value is
the sum over positions of per-position values, and each logged impression is weighted
by ``w = pi_e(a_k | x, k) / pi_0(a_k | x, k)``, the target's and the logging policy's
probabilities of putting that item at that position. A served request is the i.i.d.
unit: every estimate is a mean of per-request values, and its standard error and
confidence interval come from those values (normal approximation, or a percentile
bootstrap over requests). See ``docs/off_policy.md`` for formulas and assumptions.

- :func:`ips`: inverse propensity scoring (Horvitz & Thompson, 1952), unbiased when the
  logging propensities are right and positive wherever the target puts mass.
- :func:`snips`: self-normalised IPS (Swaminathan & Joachims, 2015), per position
  divided by the mean weight: biased but consistent, and far less variable.
- :func:`doubly_robust`: DR (Dudik, Langford & Li, 2011): a reward model's prediction
  for the target plus the weighted residual of the logged reward; unbiased if either
  the propensities or the reward model are right.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

#: Ways to compute a confidence interval.
INTERVALS = ("normal", "bootstrap")


@dataclass(frozen=True)
class Estimate:
    """A policy value estimate: expected total reward per list (request)."""

    estimator: str
    value: float
    std_error: float
    ci_low: float
    ci_high: float
    requests: int

    def to_dict(self) -> dict[str, float | int | str]:
        return asdict(self)


@dataclass(frozen=True)
class _Cells:
    """Each logged impression's request (``rows``, codes ``0..n-1``) and position
    (``columns``, codes ``0..m-1``): sums per request and per position are bincounts, so
    memory stays linear in the impressions, however long the lists."""

    rows: np.ndarray
    columns: np.ndarray
    n: int
    m: int

    @classmethod
    def of(cls, requests: np.ndarray, positions: np.ndarray) -> _Cells:
        """A (request, position) pair logged twice is an error, not a silent sum."""
        requests, positions = np.asarray(requests), np.asarray(positions)
        if len(requests) == 0:
            raise ValueError("the log is empty: there is nothing to estimate from")
        _, rows = np.unique(requests, return_inverse=True)
        _, columns = np.unique(positions, return_inverse=True)
        n, m = int(rows.max()) + 1, int(columns.max()) + 1
        key = rows.astype(np.int64) * m + columns
        if len(np.unique(key)) != len(key):
            raise ValueError("the log has two impressions at the same (request, position)")
        return cls(rows, columns, n, m)

    def per_request(self, values: np.ndarray) -> np.ndarray:
        return np.bincount(self.rows, values, minlength=self.n)

    def per_position(self, values: np.ndarray) -> np.ndarray:
        return np.bincount(self.columns, values, minlength=self.m)


def check_probabilities(logging: np.ndarray, target: np.ndarray) -> None:
    """Logging propensities in (0, 1], target probabilities in [0, 1]."""
    bad = ~((logging > 0) & (logging <= 1))
    if bad.any():
        raise ValueError(f"{int(bad.sum())} propensity value(s) outside (0, 1], e.g. "
                         f"{float(logging[bad][0])!r}: a shown item had a positive probability of "
                         "being shown, at most 1")
    bad = ~((target >= 0) & (target <= 1))
    if bad.any():
        raise ValueError(f"{int(bad.sum())} target probability value(s) outside [0, 1], "
                         f"e.g. {float(target[bad][0])!r}")


def importance_weights(logging: np.ndarray, target: np.ndarray,
                       clip: float | None = None) -> np.ndarray:
    """``target / logging`` per impression, capped at ``clip`` when given (truncated IPS,
    Ionides 2008: less variance for some bias)."""
    logging, target = np.asarray(logging, float), np.asarray(target, float)
    check_probabilities(logging, target)
    weights = target / logging
    if clip is not None:
        if not clip > 0:
            raise ValueError(f"the weight clip must be positive, got {clip!r}")
        weights = np.minimum(weights, clip)
    return weights


def effective_sample_size(weights: np.ndarray) -> float:
    """Kish's effective sample size ``(sum w)^2 / sum w^2`` of the impression weights:
    how many unweighted impressions the weighted ones are worth (0 when all are 0)."""
    weights = np.asarray(weights, float)
    total = float((weights ** 2).sum())
    return float(weights.sum() ** 2 / total) if total > 0 else 0.0


def ips(requests: np.ndarray, positions: np.ndarray, rewards: np.ndarray,
        weights: np.ndarray, *, confidence: float = 0.95, interval: str = "normal",
        n_resamples: int = 999, seed: int = 0) -> Estimate:
    """Independent (item-position) IPS: mean over requests of ``sum_k w_k r_k``."""
    cells = _Cells.of(requests, positions)
    per_request = cells.per_request(np.asarray(weights, float) * np.asarray(rewards, float))
    return _mean_estimate("ips", per_request, confidence, interval, n_resamples, seed)


def doubly_robust(requests: np.ndarray, positions: np.ndarray, rewards: np.ndarray,
                  weights: np.ndarray, q_logged: np.ndarray, q_target: np.ndarray, *,
                  confidence: float = 0.95, interval: str = "normal", n_resamples: int = 999,
                  seed: int = 0) -> Estimate:
    """DR: mean over requests of ``sum_k [q_target_k + w_k (r_k - q_logged_k)]``.

    ``q_logged``: the reward model's prediction for each logged impression;
    ``q_target``: per logged impression, the model's expected reward at that request and
    position under the target, ``sum_a pi_e(a | x, k) q(x, a, k)``. Both should come from
    a model fitted without the request (cross-fitting), so that the residual term stays
    unbiased. With ``q = 0`` this is :func:`ips`.
    """
    residual = np.asarray(rewards, float) - np.asarray(q_logged, float)
    cells = _Cells.of(requests, positions)
    per_request = cells.per_request(np.asarray(q_target, float)
                                    + np.asarray(weights, float) * residual)
    return _mean_estimate("dr", per_request, confidence, interval, n_resamples, seed)


def snips(requests: np.ndarray, positions: np.ndarray, rewards: np.ndarray,
          weights: np.ndarray, *, confidence: float = 0.95, interval: str = "normal",
          n_resamples: int = 999, seed: int = 0) -> Estimate:
    """Self-normalised independent IPS: ``sum_k (sum_i w_ik r_ik) / (sum_i w_ik)``.

    Each position's weights are normalised to mean 1 over the requests that show that
    position. The normal interval uses the ratio's linearisation (delta method) per
    request: ``sum_k (w_ik r_ik - V_k w_ik) / mean_i(w_ik)``.
    """
    _check_interval(confidence, interval)
    cells = _Cells.of(requests, positions)
    w = np.asarray(weights, float)
    wr = w * np.asarray(rewards, float)

    def value(counts: np.ndarray | None) -> np.ndarray:
        """Per position ``V_k``; ``counts``: how often each request is drawn (bootstrap)."""
        scale = 1.0 if counts is None else counts[cells.rows]
        totals = cells.per_position(w * scale)
        return np.divide(cells.per_position(wr * scale), totals, out=np.zeros(cells.m),
                         where=totals > 0)

    per_position = value(None)
    estimate = float(per_position.sum())
    mean_weight = cells.per_position(w) / cells.n
    safe = np.where(mean_weight > 0, mean_weight, 1.0)
    influence = cells.per_request((wr - per_position[cells.columns] * w)
                                  / safe[cells.columns])
    if interval == "bootstrap":
        def statistic(index: np.ndarray) -> float:
            return float(value(np.bincount(index, minlength=cells.n)).sum())
        low, high = _bootstrap(np.arange(cells.n), statistic, False, confidence,
                               n_resamples, seed)
        return Estimate("snips", estimate, _std_error(influence), low, high, cells.n)
    return _normal("snips", estimate, influence, confidence)


def _std_error(values: np.ndarray) -> float:
    return float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else float("nan")


def _normal(name: str, estimate: float, centred: np.ndarray, confidence: float) -> Estimate:
    se = _std_error(centred)
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    return Estimate(name, estimate, se, estimate - z * se, estimate + z * se, len(centred))


def _check_interval(confidence: float, interval: str) -> None:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence!r}")
    if interval not in INTERVALS:
        raise ValueError(f"interval must be one of {INTERVALS}, got {interval!r}")


def _mean_estimate(name: str, per_request: np.ndarray, confidence: float, interval: str,
                   n_resamples: int, seed: int) -> Estimate:
    _check_interval(confidence, interval)
    estimate = float(per_request.mean())
    if interval == "bootstrap":
        low, high = _bootstrap(per_request, np.mean, True, confidence, n_resamples, seed)
        return Estimate(name, estimate, _std_error(per_request), low, high, len(per_request))
    return _normal(name, estimate, per_request, confidence)


def _bootstrap(data: np.ndarray, statistic: Callable[..., float], vectorized: bool,
               confidence: float, n_resamples: int, seed: int) -> tuple[float, float]:
    """Percentile bootstrap over requests (scipy.stats.bootstrap); percentile rather than
    BCa because BCa is undefined when every request has the same value (a target that
    never agrees with the log), where the interval is the point itself."""
    if len(data) < 2:
        return float("nan"), float("nan")
    result = stats.bootstrap((data,), statistic, vectorized=vectorized, batch=64,
                             confidence_level=confidence, n_resamples=n_resamples,
                             method="percentile", rng=np.random.default_rng(seed))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)
