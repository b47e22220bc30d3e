"""evaluate_policy: logs and targets as frames, the DR plumbing, diagnostics and warnings,
and a randomised pipeline target estimated from several draws."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from recsdk.evaluation.off_policy import doubly_robust, importance_weights
from recsdk.evaluation.policy_evaluation import evaluate_policy
from recsdk.evaluation.policy_logs import PolicyLog, RewardMapping, attach_rewards
from recsdk.evaluation.target_policies import (
    TargetPolicy,
    logging_target,
    pipeline_target,
    probabilities_of_logged,
)
from recsdk.types import RecommendedItem
from tests.evaluation.test_off_policy import TARGET_LIST, K, dr_terms, simulate, true_value


def as_policy_log(n: int, seed: int) -> tuple[PolicyLog, object]:
    log = simulate(n, seed)
    frame = pd.DataFrame({"request_id": [f"q{r:05d}" for r in log.requests],
                          "user_id": [f"kind{k}" for k in log.kinds], "session_id": None,
                          "item_id": [f"i{i}" for i in log.items],
                          "position": log.positions, "propensity": log.propensity,
                          "reward": log.rewards})
    return PolicyLog(frame, "synthetic"), log


def deterministic(log: PolicyLog, lists: np.ndarray) -> TargetPolicy:
    """The target showing ``lists[kind]`` to each kind of user, as a distribution frame."""
    shown = log.frame.drop_duplicates("request_id")
    rows = [(r, p + 1, f"i{lists[int(u[-1])][p]}", 1.0)
            for r, u in zip(shown["request_id"], shown["user_id"], strict=True)
            for p in range(K)]
    distribution = pd.DataFrame(rows, columns=["request_id", "position", "item_id",
                                               "probability"])
    return TargetPolicy("personal", probabilities_of_logged(log, distribution), distribution)


def test_frames_give_the_array_estimates() -> None:
    policy_log, log = as_policy_log(1500, 11)
    evaluation = evaluate_policy(policy_log, deterministic(policy_log, TARGET_LIST), seed=3)
    assert np.array_equal(deterministic(policy_log, TARGET_LIST).probability, log.target)
    w = importance_weights(log.propensity, log.target)
    q_logged, q_target = dr_terms(log, seed=3)
    expected = doubly_robust(log.requests, log.positions, log.rewards, w, q_logged, q_target)
    assert evaluation.estimates["dr"].value == pytest.approx(expected.value)
    assert evaluation.estimates["dr"].std_error == pytest.approx(expected.std_error)
    truth = true_value(TARGET_LIST)
    for name in ("ips", "snips", "dr"):
        e = evaluation.estimates[name]
        assert e.ci_low - 0.1 < truth < e.ci_high + 0.1
    assert evaluation.matched_share == pytest.approx((log.target > 0).mean())
    assert evaluation.warnings == []
    assert evaluation.to_dict()["estimates"]["dr"]["estimator"] == "dr"


def test_logging_target_and_rewards_from_feedback() -> None:
    frame = pd.DataFrame({"request_id": ["a", "a", "b"], "item_id": ["x", "y", "x"],
                          "position": [1, 2, 1], "propensity": [0.5, 0.5, 1.0]})
    feedback = pd.DataFrame({"request_id": ["a", "a", "b", "b"],
                             "item_id": ["x", "x", "x", "gone"],
                             "type": ["click", "purchase", "click", "click"],
                             "value": [None, 12.5, None, None]})
    mapping = RewardMapping.parse(["click=1", "purchase=value"])
    rewarded, unmatched = attach_rewards(frame, feedback, mapping, "test")
    assert rewarded["reward"].tolist() == [13.5, 0.0, 1.0] and unmatched == 1
    log = PolicyLog(rewarded.assign(user_id=None, session_id=None), "test", unmatched,
                    mapping)
    evaluation = evaluate_policy(log, logging_target(log))
    assert evaluation.logged.value == evaluation.estimates["ips"].value == pytest.approx(7.25)
    assert evaluation.reward == {"click": 1.0, "purchase": "value"}
    assert "1 feedback row(s)" in evaluation.notes[0]


def test_warnings_on_poor_support_and_heavy_weights() -> None:
    policy_log, _ = as_policy_log(400, 12)
    never = np.full((2, K), 99)  # an item the logging policy never shows
    evaluation = evaluate_policy(policy_log, deterministic(policy_log, never))
    assert evaluation.estimates["ips"].value == 0
    assert any(w.startswith("poor support") for w in evaluation.warnings)
    frame = policy_log.frame.copy()
    frame["propensity"] = 1.0
    frame.loc[0, "propensity"] = 0.001
    heavy = PolicyLog(frame, "heavy")
    target = TargetPolicy("the log's items", np.ones(len(frame)), None)
    evaluation = evaluate_policy(heavy, target)
    assert any(w.startswith("heavy importance weights") for w in evaluation.warnings)
    assert evaluation.max_weight == 1000 and evaluation.clipped == 0
    clipped = evaluate_policy(heavy, target, clip=10)
    assert clipped.warnings == [] and (clipped.clipped, clipped.max_weight) == (1, 10)
    assert clipped.estimates["dr"] is None


@dataclass
class Shuffler:
    """A stand-in for RecSDK whose pipeline shuffles the candidates (seeded)."""

    rng: np.random.Generator
    trained: bool = True

    def recommend(self, user, *, session_id, placement, k, candidates, log_request):
        assert log_request is False and k == len(candidates)
        order = self.rng.permutation(len(candidates))
        return _Result([RecommendedItem(candidates[o], 0.0, p + 1)
                        for p, o in enumerate(order)])


@dataclass
class _Result:
    items: list[RecommendedItem]


def test_a_randomised_pipeline_is_estimated_from_its_draws() -> None:
    """A uniformly shuffling target puts each logged item at its position with probability
    1/K; with many draws the estimated probabilities approach it."""
    policy_log, _ = as_policy_log(200, 13)
    target = pipeline_target(policy_log, Shuffler(np.random.default_rng(0)), samples=400)
    assert target.probability.mean() == pytest.approx(1 / K, abs=0.01)
    assert np.abs(target.probability - 1 / K).max() < 0.12
    per_cell = target.distribution.groupby(["request_id", "position"])["probability"].sum()
    assert per_cell.to_numpy() == pytest.approx(1.0)
    assert target.notes == ["400 draws of the pipeline per list"]
    with pytest.raises(ValueError, match="samples must be at least 1"):
        pipeline_target(policy_log, Shuffler(np.random.default_rng(0)), samples=0)


def test_reward_mappings() -> None:
    assert RewardMapping.parse([]).to_dict() == {"click": 1.0}
    assert RewardMapping.parse(["click=0.5", " purchase = value "]).to_dict() == {
        "click": 0.5, "purchase": "value"}
    with pytest.raises(ValueError, match="must be finite"):
        RewardMapping.parse(["click=inf"])
    with pytest.raises(ValueError, match="a reward is TYPE=NUMBER or TYPE=value"):
        RewardMapping.parse(["=1"])
    with pytest.raises(ValueError, match="reward of 'click' must be a number or 'value'"):
        RewardMapping({"click": "lots"})
