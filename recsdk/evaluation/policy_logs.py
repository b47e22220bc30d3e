"""Logged lists for off-policy evaluation: one row per impression, with its propensity
and its reward, read from recsdk's own tables or from a file.

A row is ``request_id, user_id, session_id, item_id, position, propensity, reward``
(and ``target_propensity`` when a file carries the target's probabilities). The reward
of an impression is the sum, over the feedback credited to that request and item, of
each feedback type's configured value (:class:`RewardMapping`). Nothing is guessed: a
missing propensity, a propensity outside (0, 1] or a feedback type the mapping does not
name is an error that says what is wrong and where.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import Engine, select

from recsdk.data.tables import read_table
from recsdk.errors import ValidationFailed
from recsdk.evaluation.files import _numbers, _require_columns, _require_values, fail
from recsdk.storage import models

#: Use the feedback row's own ``value`` (a purchase's amount, say) as its reward.
FEEDBACK_VALUE = "value"
#: Columns every log file needs, and those it may have.
LOG_COLUMNS = ("request_id", "item_id", "position", "propensity")
OPTIONAL_LOG_COLUMNS = ("user_id", "session_id", "reward", "target_propensity")
FEEDBACK_COLUMNS = ("request_id", "item_id", "type")
PROPENSITY_HINT = ("the probability that the logging policy showed that item at that "
                   "position; lists served by a pipeline whose reranker logs propensities "
                   "(linucb, thompson) have it")


@dataclass(frozen=True)
class RewardMapping:
    """Feedback type -> reward: a number, or ``"value"`` for the row's own value."""

    values: Mapping[str, float | str] = field(default_factory=lambda: {"click": 1.0})

    def __post_init__(self) -> None:
        for kind, value in self.values.items():
            if value != FEEDBACK_VALUE and not isinstance(value, int | float):
                raise ValueError(f"reward of {kind!r} must be a number or {FEEDBACK_VALUE!r}, "
                                 f"got {value!r}")

    @classmethod
    def parse(cls, pairs: Sequence[str]) -> RewardMapping:
        """``TYPE=NUMBER`` or ``TYPE=value`` strings (an empty sequence: click=1)."""
        if not pairs:
            return cls()
        values: dict[str, float | str] = {}
        for pair in pairs:
            kind, sep, text = pair.partition("=")
            if not sep or not kind.strip() or not text.strip():
                raise ValueError(f"a reward is TYPE=NUMBER or TYPE={FEEDBACK_VALUE}, got {pair!r}")
            text = text.strip()
            if text == FEEDBACK_VALUE:
                values[kind.strip()] = FEEDBACK_VALUE
                continue
            try:
                number = float(text)
            except ValueError as exc:
                raise ValueError(f"reward of {kind.strip()!r} must be a number or "
                                 f"{FEEDBACK_VALUE!r}, got {text!r}") from exc
            if not np.isfinite(number):
                raise ValueError(f"reward of {kind.strip()!r} must be finite, got {text!r}")
            values[kind.strip()] = number
        return cls(values)

    def rewards(self, feedback: pd.DataFrame, source: str) -> np.ndarray:
        """The reward of each feedback row (``type`` and ``value`` columns)."""
        kinds = feedback["type"].astype(str)
        unknown = sorted(set(kinds) - set(self.values))
        if unknown:
            raise ValidationFailed(
                {"type": [f"feedback type(s) {unknown} have no reward: give --reward "
                          f"TYPE=NUMBER (0 to ignore a type) or TYPE={FEEDBACK_VALUE}; "
                          f"rewards given: {dict(self.values)}"]}, source)
        out = np.zeros(len(feedback))
        values = (pd.to_numeric(feedback["value"], errors="coerce").to_numpy(dtype=float)
                  if "value" in feedback else np.full(len(feedback), np.nan))
        for kind, reward in self.values.items():
            rows = (kinds == kind).to_numpy()
            if reward != FEEDBACK_VALUE:
                out[rows] = float(reward)
                continue
            missing = rows & ~np.isfinite(values)
            if missing.any():
                raise ValidationFailed(
                    {"value": [f"{int(missing.sum())} {kind!r} feedback row(s) have no "
                               f"numeric value, but its reward is {FEEDBACK_VALUE!r}"]}, source)
            out[rows] = values[rows]
        return out

    def to_dict(self) -> dict[str, float | str]:
        return dict(self.values)


@dataclass(frozen=True)
class PolicyLog:
    """Logged impressions with propensities and rewards, sorted by request and position.

    ``frame`` columns: ``request_id, user_id, session_id, item_id, position, propensity,
    reward`` and, when the source had it, ``target_propensity``. ``unmatched_feedback``
    counts feedback rows credited to a request for an item it did not show (dropped).
    """

    frame: pd.DataFrame
    source: str
    unmatched_feedback: int = 0
    #: the rewards' mapping from feedback types; None: the log's own reward column
    reward: RewardMapping | None = None
    #: lists left out because an impression had no propensity
    dropped_lists: int = 0

    @property
    def requests(self) -> int:
        return int(self.frame["request_id"].nunique())

    def __len__(self) -> int:
        return len(self.frame)


def _finish(frame: pd.DataFrame, source: str, unmatched: int = 0,
            reward: RewardMapping | None = None, dropped: int = 0) -> PolicyLog:
    if frame.empty:
        raise ValidationFailed({"rows": ["no logged impressions: there is nothing to "
                                         "evaluate"]}, source)
    for column in ("user_id", "session_id"):
        if column not in frame:
            frame[column] = None
    frame = frame.sort_values(["request_id", "position"], kind="stable").reset_index(drop=True)
    return PolicyLog(frame, source, unmatched, reward, dropped)


def attach_rewards(impressions: pd.DataFrame, feedback: pd.DataFrame,
                   mapping: RewardMapping, source: str) -> tuple[pd.DataFrame, int]:
    """``impressions`` with a ``reward`` column: each impression's feedback rewards summed.
    Returns it and the number of feedback rows whose item the request did not show."""
    out = impressions.copy()
    out["reward"] = 0.0
    if feedback.empty:
        return out, 0
    rewards = pd.Series(mapping.rewards(feedback, source), index=feedback.index)
    per_pair = rewards.groupby([feedback["request_id"].astype(str),
                                feedback["item_id"].astype(str)]).sum()
    keys = pd.MultiIndex.from_arrays([out["request_id"], out["item_id"]])
    matched = per_pair.reindex(keys)
    out["reward"] = matched.fillna(0.0).to_numpy()
    shown = set(zip(out["request_id"], out["item_id"], strict=True))
    unmatched = sum(1 for pair in zip(feedback["request_id"].astype(str),
                                      feedback["item_id"].astype(str), strict=True)
                    if pair not in shown)
    return out, unmatched


# ---- the database ------------------------------------------------------------------------


def load_database_log(engine: Engine, mapping: RewardMapping, *, placement: str | None = None,
                      since: datetime | None = None, until: datetime | None = None,
                      drop_incomplete: bool = False, source: str = "database") -> PolicyLog:
    """Impressions of served lists (at ``placement``, created in ``[since, until)``) with
    their propensities, and the feedback credited to them. A list with an impression
    without propensity is an error, or, with ``drop_incomplete``, left out whole (and
    counted in ``dropped_lists``): its value cannot be weighted position by position."""
    req = models.RecommendationRequest.__table__
    imp = models.Impression.__table__
    fb = models.Feedback.__table__
    wanted = select(req.c.id)
    if placement is not None:
        wanted = wanted.where(req.c.placement == placement)
    if since is not None:
        wanted = wanted.where(req.c.created_at >= since)
    if until is not None:
        wanted = wanted.where(req.c.created_at < until)
    shown = (select(imp.c.request_id, req.c.user_id, req.c.session_id, imp.c.item_id,
                    imp.c.position, imp.c.propensity)
             .join(req, req.c.id == imp.c.request_id)
             .where(imp.c.request_id.in_(wanted)))
    reactions = (select(fb.c.request_id, fb.c.item_id, fb.c.type, fb.c.value)
                 .where(fb.c.request_id.in_(wanted)))
    with engine.connect() as conn:
        impressions = pd.DataFrame(conn.execute(shown).all(),
                                   columns=["request_id", "user_id", "session_id", "item_id",
                                            "position", "propensity"])
        feedback = pd.DataFrame(conn.execute(reactions).all(),
                                columns=["request_id", "item_id", "type", "value"])
    if impressions.empty:
        raise ValidationFailed({"rows": ["no served lists with impressions"
                                         + (f" at placement {placement!r}" if placement else "")
                                         + (" in the given time range" if since or until else "")
                                         + ": there is nothing to evaluate"]}, source)
    missing = impressions["propensity"].isna().to_numpy()
    dropped = 0
    if missing.any() and drop_incomplete:
        incomplete = impressions["request_id"].isin(set(impressions.loc[missing, "request_id"]))
        dropped = int(impressions.loc[incomplete, "request_id"].nunique())
        impressions = impressions.loc[~incomplete].reset_index(drop=True)
        feedback = feedback.loc[feedback["request_id"].isin(set(impressions["request_id"]))]
        if impressions.empty:
            raise ValidationFailed({"propensity": [
                f"every one of the {dropped} selected list(s) has an impression without "
                f"propensity (impressions.propensity is NULL); it is {PROPENSITY_HINT}"]},
                source)
    elif missing.any():
        requests = impressions.loc[missing, "request_id"]
        raise ValidationFailed(
            {"propensity": [f"{int(missing.sum())} impression(s) of {requests.nunique()} "
                            f"request(s) have no propensity (impressions.propensity is "
                            f"NULL), e.g. request {requests.iloc[0]!r}; it is "
                            f"{PROPENSITY_HINT}. Select lists that have it (--placement, "
                            "--since), or leave such lists out (--drop-incomplete)"]}, source)
    impressions["propensity"] = impressions["propensity"].astype(float)
    impressions["position"] = impressions["position"].astype(int)
    _check_propensities(impressions, source)
    frame, unmatched = attach_rewards(impressions, feedback, mapping, source)
    return _finish(frame, source, unmatched, mapping, dropped)


def _check_propensities(frame: pd.DataFrame, source: str, by_line: bool = False) -> None:
    """Every propensity in (0, 1]; ``by_line``: name the file's lines."""
    values = frame["propensity"].to_numpy(dtype=float)
    bad = np.flatnonzero(~((values > 0) & (values <= 1)))
    if len(bad):
        if by_line:
            raise fail(frame, source, "propensity", bad,
                       f"propensity must be in (0, 1], got {float(values[bad[0]])!r}")
        raise ValidationFailed({"propensity": [
            f"{len(bad)} impression(s) have a propensity outside (0, 1], e.g. "
            f"{float(values[bad[0]])!r} for request {frame['request_id'].iloc[bad[0]]!r}"]}, source)


# ---- files -------------------------------------------------------------------------------


def read_any_table(path: str | Path) -> pd.DataFrame:
    """CSV, TSV, JSONL (recsdk.data.tables) or Parquet, every column as text."""
    path = Path(path)
    if path.suffix.lower() == ".parquet":
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such file")
        try:
            frame = pd.read_parquet(path).astype(object)
        except ImportError as exc:
            raise ValidationFailed({"format": ["reading Parquet needs pyarrow "
                                               "(pip install pyarrow); or give CSV, TSV or "
                                               "JSONL"]}, str(path)) from exc
        frame = frame.map(lambda v: v if v is None or (isinstance(v, float) and v != v)
                          else str(v))
    else:
        frame = read_table(path)
    frame.attrs["source"] = str(path)
    return frame.reset_index(drop=True)


def whole_positions(frame: pd.DataFrame, what: str) -> np.ndarray:
    """The ``position`` column as whole numbers from 1; anything else names its line."""
    values = _numbers(frame, "position", what)
    bad = np.flatnonzero((values < 1) | (values != np.round(values)))
    if len(bad):
        example = frame["position"].iloc[bad[0]]
        raise fail(frame, what, "position", bad,
                   f"position must be a whole number from 1, got {example!r}")
    return values.astype(int)


def read_log_file(path: str | Path, mapping: RewardMapping,
                  feedback_path: str | Path | None = None) -> PolicyLog:
    """A log file of impressions (see ``docs/off_policy.md``): the rewards from its
    ``reward`` column, or from a feedback file (``request_id,item_id,type[,value]``)."""
    frame = read_any_table(path)
    what = str(path)
    if "propensity" not in frame.columns:
        raise ValidationFailed({"columns": [
            f"missing column 'propensity' ({PROPENSITY_HINT}); the header names "
            f"{list(frame.columns)}"]}, what)
    _require_columns(frame, LOG_COLUMNS, what)
    if frame.empty:
        raise ValidationFailed({"rows": ["no logged impressions: there is nothing to "
                                         "evaluate"]}, what)
    _require_values(frame, LOG_COLUMNS, what)
    out = pd.DataFrame({"request_id": frame["request_id"].astype(str),
                        "item_id": frame["item_id"].astype(str),
                        "position": whole_positions(frame, what),
                        "propensity": _numbers(frame, "propensity", what)})
    for column in ("user_id", "session_id"):
        if column in frame:
            out[column] = frame[column].where(frame[column].notna(), None)
    checked = out.copy()
    checked.attrs = frame.attrs
    _check_propensities(checked, what, by_line=True)
    duplicated = np.flatnonzero(out.duplicated(["request_id", "position"]).to_numpy())
    if len(duplicated):
        raise fail(frame, what, "position", duplicated,
                   "two impressions of one request at the same position")
    duplicated = np.flatnonzero(out.duplicated(["request_id", "item_id"]).to_numpy())
    if len(duplicated):
        raise fail(frame, what, "item_id", duplicated, "an item shown twice in one request")
    if "target_propensity" in frame:
        _require_values(frame, ["target_propensity"], what)
        target = _numbers(frame, "target_propensity", what)
        bad = np.flatnonzero(~((target >= 0) & (target <= 1)))
        if len(bad):
            raise fail(frame, what, "target_propensity", bad,
                       f"target_propensity must be in [0, 1], got {float(target[bad[0]])!r}")
        out["target_propensity"] = target
    if "reward" in frame:
        if feedback_path is not None:
            raise ValidationFailed({"reward": ["the log has a reward column and a feedback "
                                               "file was given too: use one of them"]}, what)
        _require_values(frame, ["reward"], what)
        out["reward"] = _numbers(frame, "reward", what)
        return _finish(out, what)
    if feedback_path is None:
        raise ValidationFailed({"columns": [
            "missing column 'reward': give the rewards in a reward column, or the feedback "
            "in a feedback file (request_id,item_id,type[,value])"]}, what)
    feedback = read_any_table(feedback_path)
    _require_columns(feedback, FEEDBACK_COLUMNS, str(feedback_path))
    _require_values(feedback, FEEDBACK_COLUMNS, str(feedback_path))
    unknown = ~feedback["request_id"].astype(str).isin(set(out["request_id"])).to_numpy()
    frame_out, unmatched = attach_rewards(out, feedback.loc[~unknown], mapping,
                                          str(feedback_path))
    return _finish(frame_out, what, unmatched + int(unknown.sum()), mapping)
