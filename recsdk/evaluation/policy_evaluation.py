"""One off-policy evaluation: a logged policy's lists, a target policy, the estimates.

Ties :mod:`.policy_logs` (what was shown, with propensities and rewards),
:mod:`.target_policies` (what the target would show) and :mod:`.off_policy` (the
estimators) together, with the diagnostics that say whether to trust the numbers: the
effective sample size, the share of logged impressions the target could have shown, the
largest weight, and warnings when the overlap is poor.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from recsdk.evaluation.off_policy import (
    Estimate,
    doubly_robust,
    effective_sample_size,
    importance_weights,
    ips,
    snips,
)
from recsdk.evaluation.policy_logs import PolicyLog
from recsdk.evaluation.reward_model import DEFAULT_FOLDS, DEFAULT_SHRINKAGE, cross_fit
from recsdk.evaluation.target_policies import TargetPolicy

ESTIMATORS = ("ips", "snips", "dr")
#: Below this share of logged impressions with a positive target probability, warn.
MIN_MATCHED_SHARE = 0.05
#: Warn when the effective sample size is below this share of the impressions...
MIN_ESS_SHARE = 0.01
#: ...or when one impression weighs more than this.
MAX_WEIGHT = 100.0


@dataclass(frozen=True)
class PolicyEvaluation:
    """Estimates of the target's value (expected total reward per list) and diagnostics."""

    target: str
    source: str
    #: feedback type -> reward; None: the log's own reward column
    reward: dict[str, float | str] | None
    requests: int
    impressions: int
    logged: Estimate
    estimates: dict[str, Estimate | None]
    effective_sample_size: float
    matched_share: float
    max_weight: float
    clipped: int
    clip: float | None
    confidence: float
    interval: str
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target, "source": self.source, "reward": self.reward,
            "requests": self.requests,
            "impressions": self.impressions, "logged_value": self.logged.to_dict(),
            "estimates": {name: e.to_dict() if e is not None else None
                          for name, e in self.estimates.items()},
            "effective_sample_size": self.effective_sample_size,
            "matched_share": self.matched_share, "max_weight": self.max_weight,
            "clipped": self.clipped, "clip": self.clip, "confidence": self.confidence,
            "interval": self.interval, "warnings": list(self.warnings),
            "notes": list(self.notes),
        }


def direct_terms(log: PolicyLog, distribution: pd.DataFrame, *, folds: int = DEFAULT_FOLDS,
                 shrinkage: float = DEFAULT_SHRINKAGE,
                 seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The cross-fitted reward model's prediction for each logged impression, and its
    expectation under the target at each logged (request, position)."""
    frame = log.frame
    request_codes, request_ids = pd.factorize(frame["request_id"])
    items = pd.Index(pd.unique(pd.concat([frame["item_id"], distribution["item_id"]])))
    positions = pd.Index(np.unique(np.concatenate([frame["position"].to_numpy(),
                                                   distribution["position"].to_numpy()])))
    logged_items = items.get_indexer(frame["item_id"])
    logged_positions = positions.get_indexer(frame["position"])
    target_requests = pd.Index(request_ids).get_indexer(distribution["request_id"])
    keep = target_requests >= 0
    target_requests = target_requests[keep]
    target_items = items.get_indexer(distribution["item_id"][keep])
    target_positions = positions.get_indexer(distribution["position"][keep])
    probability = distribution["probability"].to_numpy(float)[keep]
    q_logged = np.zeros(len(frame))
    q_cells = np.zeros(len(target_requests))
    for in_fold, model in cross_fit(request_codes, logged_items, logged_positions,
                                    frame["reward"].to_numpy(float), len(items),
                                    len(positions), folds=folds, shrinkage=shrinkage,
                                    seed=seed):
        rows = in_fold[request_codes]
        q_logged[rows] = model.predict(logged_items[rows], logged_positions[rows])
        cells = in_fold[target_requests]
        q_cells[cells] = model.predict(target_items[cells], target_positions[cells])
    width = len(positions)
    cell_key = target_requests.astype(np.int64) * width + target_positions
    expected = np.bincount(cell_key, q_cells * probability,
                           minlength=len(request_ids) * width)
    q_target = expected[request_codes.astype(np.int64) * width + logged_positions]
    return q_logged, q_target


def evaluate_policy(log: PolicyLog, target: TargetPolicy, *, clip: float | None = None,
                    confidence: float = 0.95, interval: str = "normal",
                    folds: int = DEFAULT_FOLDS, shrinkage: float = DEFAULT_SHRINKAGE,
                    seed: int = 0, n_resamples: int = 999) -> PolicyEvaluation:
    """IPS, SNIPS and (when the target's distribution is known) DR for ``target``."""
    frame = log.frame
    requests, positions = frame["request_id"].to_numpy(), frame["position"].to_numpy()
    rewards = frame["reward"].to_numpy(float)
    logging = frame["propensity"].to_numpy(float)
    raw = importance_weights(logging, target.probability)
    weights = importance_weights(logging, target.probability, clip)
    options: dict[str, Any] = {"confidence": confidence, "interval": interval,
                               "n_resamples": n_resamples, "seed": seed}
    logged = ips(requests, positions, rewards, np.ones(len(frame)), **options)
    estimates: dict[str, Estimate | None] = {
        "ips": ips(requests, positions, rewards, weights, **options),
        "snips": snips(requests, positions, rewards, weights, **options),
        "dr": None,
    }
    notes = list(target.notes) + _log_notes(log)
    if target.distribution is not None and log.requests < 2:
        notes.append("the doubly robust estimate needs at least 2 lists (its reward model "
                     "is cross-fitted)")
    elif target.distribution is not None:
        q_logged, q_target = direct_terms(log, target.distribution, folds=folds,
                                          shrinkage=shrinkage, seed=seed)
        estimates["dr"] = doubly_robust(requests, positions, rewards, weights, q_logged,
                                        q_target, **options)
    ess = effective_sample_size(weights)
    matched = float((target.probability > 0).mean())
    max_weight = float(weights.max())
    return PolicyEvaluation(
        target=target.name, source=log.source,
        reward=log.reward.to_dict() if log.reward is not None else None,
        requests=log.requests, impressions=len(frame),
        logged=replace(logged, estimator="logged"),
        estimates=estimates, effective_sample_size=ess, matched_share=matched,
        max_weight=max_weight, clipped=int((raw > weights).sum()), clip=clip,
        confidence=confidence, interval=interval,
        warnings=_warnings(len(frame), ess, matched, max_weight),
        notes=notes,
    )


def _log_notes(log: PolicyLog) -> list[str]:
    out = []
    if log.unmatched_feedback:
        out.append(f"{log.unmatched_feedback} feedback row(s) name an item their request did "
                   "not show, or an unknown request: not counted")
    if log.dropped_lists:
        out.append(f"{log.dropped_lists} list(s) left out: an impression had no propensity")
    return out


def _warnings(impressions: int, ess: float, matched: float, max_weight: float) -> list[str]:
    out = []
    if matched < MIN_MATCHED_SHARE:
        out.append(f"poor support: the target gives a positive probability to only "
                   f"{matched:.1%} of the logged impressions, so the estimates rest on "
                   "few of them; log with more exploration or evaluate a target closer "
                   "to the logging policy")
    if ess < MIN_ESS_SHARE * impressions or max_weight > MAX_WEIGHT:
        out.append(f"heavy importance weights: effective sample size {ess:.1f} of "
                   f"{impressions} impressions, largest weight {max_weight:.3g}; expect a "
                   "wide interval (--clip caps the weights, at the price of some bias)")
    return out
