"""The policy an off-policy evaluation asks about: its probabilities at the logged lists.

Estimators need two things from a target policy ``pi_e``, per logged impression of item
``a`` at position ``k``: ``pi_e(a | x, k)``, the probability that it would put that item
there (the importance weight's numerator), and, for the doubly robust estimator, its
distribution over items at that position (``distribution``: rows ``request_id,
position, item_id, probability``) to average the reward model over. Four sources:

- :func:`pipeline_target`: a recsdk configuration's trained pipeline re-ranks each
  logged list's own items for that user (``RecSDK.recommend(candidates=...)``). Each
  call is one draw of the pipeline: the probability of the logged item is estimated by
  the share of ``samples`` draws that put it at the logged position (1 or 0 for a
  deterministic pipeline; an unbiased estimate for a randomised one, whereas using the
  target's own propensity for its own item would be biased when it differs);
- :func:`file_target`: a file that gives the target's distribution per position;
- :func:`logging_target`: the logging policy itself (weights of 1: IPS is the logged
  mean, a sanity check of the data);
- :func:`column_target`: the log file's ``target_propensity`` column (IPS and SNIPS only:
  the doubly robust estimator needs the whole distribution).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from recsdk.errors import ValidationFailed
from recsdk.evaluation.files import _numbers, _require_columns, _require_values, fail
from recsdk.evaluation.policy_logs import PolicyLog, read_any_table, whole_positions

if TYPE_CHECKING:
    from recsdk.sdk import RecSDK

TARGET_COLUMNS = ("request_id", "position", "item_id", "probability")
#: Slack allowed when a file's probabilities at one position add up to more than 1.
TOLERANCE = 1e-6


@dataclass(frozen=True)
class TargetPolicy:
    """``probability[i]``: the target's probability of the log's row ``i`` (its item at
    its position); ``distribution``: the target's items per (request, position), or
    None when only ``probability`` is known."""

    name: str
    probability: np.ndarray
    distribution: pd.DataFrame | None
    notes: list[str] = field(default_factory=list)


def logging_target(log: PolicyLog) -> TargetPolicy:
    """The logging policy: its logged items are one draw of its own distribution."""
    frame = log.frame
    distribution = frame[["request_id", "position", "item_id"]].assign(probability=1.0)
    return TargetPolicy("the logging policy", frame["propensity"].to_numpy(float),
                        distribution)


def column_target(log: PolicyLog) -> TargetPolicy:
    if "target_propensity" not in log.frame:
        raise ValidationFailed({"columns": ["missing column 'target_propensity' (the target "
                                            "policy's probability of each logged item at "
                                            "its position)"]}, log.source)
    return TargetPolicy(f"target_propensity of {log.source}",
                        log.frame["target_propensity"].to_numpy(float), None,
                        ["the doubly robust estimate needs the target's whole distribution "
                         "(a target file or configuration), not only target_propensity"])


def probabilities_of_logged(log: PolicyLog, distribution: pd.DataFrame) -> np.ndarray:
    """Look the log's (request, position, item) up in ``distribution`` (0 when absent)."""
    table = distribution.groupby(["request_id", "position", "item_id"])["probability"].sum()
    keys = pd.MultiIndex.from_arrays([log.frame["request_id"], log.frame["position"],
                                      log.frame["item_id"]])
    return table.reindex(keys).fillna(0.0).to_numpy(float)


def file_target(log: PolicyLog, path: str | Path) -> TargetPolicy:
    """A target file: ``request_id,position,item_id,probability`` rows, the target's
    probability of each item at each position of each logged request (a deterministic
    target: one row per position with probability 1)."""
    frame = read_any_table(path)
    what = str(path)
    _require_columns(frame, TARGET_COLUMNS, what)
    _require_values(frame, TARGET_COLUMNS, what)
    probability = _numbers(frame, "probability", what)
    bad = np.flatnonzero(~((probability >= 0) & (probability <= 1)))
    if len(bad):
        raise fail(frame, what, "probability", bad,
                   f"probability must be in [0, 1], got {float(probability[bad[0]])!r}")
    distribution = pd.DataFrame({"request_id": frame["request_id"].astype(str),
                                 "position": whole_positions(frame, what),
                                 "item_id": frame["item_id"].astype(str),
                                 "probability": probability})
    duplicated = np.flatnonzero(distribution.duplicated(
        ["request_id", "position", "item_id"]).to_numpy())
    if len(duplicated):
        raise fail(frame, what, "item_id", duplicated,
                   "the same item twice at one (request, position)")
    totals = distribution.groupby(["request_id", "position"])["probability"].sum()
    over = totals[totals > 1 + TOLERANCE]
    if len(over):
        (request, position), total = over.index[0], float(over.iloc[0])
        raise ValidationFailed({"probability": [
            f"{len(over)} (request, position) pair(s) have probabilities adding up to more "
            f"than 1, e.g. request {request!r} position {position}: {total:.6g}"]}, what)
    missing = sorted(set(log.frame["request_id"]) - set(distribution["request_id"]))
    if missing:
        raise ValidationFailed({"request_id": [
            f"{len(missing)} logged request(s) are not in the target file, e.g. "
            f"{missing[0]!r}: give the target's items for every logged request"]}, what)
    return TargetPolicy(f"target file {path}", probabilities_of_logged(log, distribution),
                        distribution)


def pipeline_target(log: PolicyLog, sdk: RecSDK, *, placement: str = "default",
                    samples: int = 1, name: str = "the configured pipeline",
                    progress: bool = False) -> TargetPolicy:
    """Each logged list's items re-ranked by ``sdk``'s pipeline for the list's user (or
    session), ``samples`` times; nothing is logged as served. The pipeline reads each
    user's history as it is now, not as it was when the list was served."""
    if samples < 1:
        raise ValueError(f"samples must be at least 1, got {samples}")
    if not sdk.trained:
        raise ValidationFailed({"model": ["the target configuration has no trained model: "
                                          "run `recsdk train` with it first"]}, name)
    rows: list[tuple[str, int, str]] = []
    lists = log.frame.groupby("request_id", sort=False)
    for request_id, shown in _progress(lists, progress, log.requests):
        items = shown["item_id"].tolist()
        user, session = shown["user_id"].iloc[0], shown["session_id"].iloc[0]
        for _ in range(samples):
            result = sdk.recommend(user, session_id=session, placement=placement,
                                   k=len(items), candidates=items, log_request=False)
            rows += [(str(request_id), i.position, i.item_id) for i in result.items]
    distribution = pd.DataFrame(rows, columns=["request_id", "position", "item_id"])
    distribution["probability"] = 1.0 / samples
    distribution = (distribution.groupby(["request_id", "position", "item_id"],
                                         as_index=False)["probability"].sum())
    notes = ([f"{samples} draws of the pipeline per list"] if samples > 1 else [])
    return TargetPolicy(name, probabilities_of_logged(log, distribution), distribution, notes)


def _progress(groups: Iterable[tuple[object, pd.DataFrame]], show: bool,
              total: int) -> Iterable[tuple[object, pd.DataFrame]]:
    if not show:
        return groups
    from tqdm import tqdm

    return tqdm(groups, total=total, desc="re-ranking logged lists", unit="list")
