"""The ``ltr`` plugin: a LambdaMART final ranker stacked over the configured scorers.

LambdaRank (Burges et al. 2006; LambdaMART, Burges 2010) trained with LightGBM (Ke et
al. 2017, ``objective = "lambdarank"``) reorders the blend's best ``[pipeline]
rank_depth`` candidates through the ``recsdk_rank`` hook (stage 3b), from features
built by :mod:`.features`: every scorer's score, rank and scaled score on the
candidates, the blend position, item popularity, mean rating, age and recency, price
and numeric attributes, user activity and mean rating, and the match of the item's
category and tags with the user's interest profile.

Training is stacking (:mod:`.stacking`): a validation split is carved from the
training data, fresh instances of the other configured scorers are fitted on the
rest, the validation users' candidates are those the served pipeline would hand the
ranker, labelled by the held-out items; a held-out group of those users stops the
boosting early. With ``blend_prior`` the boosting starts from the blend's order
(LightGBM ``init_score``) and the trees learn corrections to it. The model is kept as
LightGBM's text format (never pickled); the gain importances are in ``report_``, logged
at training and saved with the run's state.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Self

import numpy as np
from marshmallow import RAISE, Schema, fields, validate
from recsdk_plugins.ltr.features import (
    InterestMatch,
    ItemStats,
    Timing,
    UserStats,
    feature_matrix,
    feature_names,
)
from recsdk_plugins.ltr.stacking import SPLITS, StackedScorers, carve, split_users

from recsdk import Plugin, hookimpl
from recsdk.dataset import InteractionDataset
from recsdk.errors import ConfigurationError
from recsdk.features.interest import UserInterestModel
from recsdk.types import CandidateSet, PluginContext, RecommendationRequest

log = logging.getLogger(__name__)

NAME = "ltr"
#: NDCG cut-off of early stopping and of the report's validation comparison
EVAL_AT = 10
INTEREST_PREFIX = "interest."
TIMING_ARRAYS = ("item_bins", "user_bins", "item_mean", "user_mean")
#: at a prior of 10 training derailed on MovieLens-100K (docs/algorithms/ltr.md,
#: "Boosting from the blend"): past 5 is refused
MAX_PRIOR = 5.0


def blend_prior(lengths: list[int] | np.ndarray, depth: int, weight: float) -> np.ndarray:
    """Each candidate's starting score from its blend position (lists concatenated):
    ``weight`` at the top falling linearly to 0 at ``depth``; scale-free, so it means
    the same on the stacking lists and at serving, whatever the scorers' raw scales."""
    if weight == 0 or len(lengths) == 0:
        return np.zeros(int(np.sum(lengths)))
    positions = np.concatenate([np.arange(n, dtype=np.float64) for n in lengths])
    return weight * (1.0 - positions / max(1, depth))


class LtrParams(Schema):
    class Meta:
        unknown = RAISE

    validation_share = fields.Float(
        load_default=0.2, validate=validate.Range(min=0.05, max=0.5),
        metadata={"description": "share of each user's training items held out to label "
                  "the ranker's training candidates"})
    validation_split = fields.String(
        load_default="random", validate=validate.OneOf(SPLITS),
        metadata={"description": "random: a random share of each user's items; time: "
                  "each user's latest share"})
    folds = fields.Integer(
        load_default=3, validate=validate.Range(min=1, max=10),
        metadata={"description": "validation splits carved (each with its own seed, the "
                  "scorers refitted on each): more ranker training lists, more fit time"})
    stop_share = fields.Float(
        load_default=0.2, validate=validate.Range(min=0.05, max=0.5),
        metadata={"description": "share of the validation users whose lists stop the "
                  "boosting early (not trained on)"})
    max_users = fields.Integer(
        load_default=20_000, validate=validate.Range(min=10),
        metadata={"description": "most validation users (a seeded sample beyond)"})
    n_estimators = fields.Integer(
        load_default=1000, validate=validate.Range(min=1, max=100_000),
        metadata={"description": "most boosting rounds (early stopping usually ends first)"})
    early_stopping_rounds = fields.Integer(
        load_default=50, validate=validate.Range(min=1, max=10_000),
        metadata={"description": "stop after this many rounds without a better "
                  f"validation NDCG@{EVAL_AT}"})
    learning_rate = fields.Float(
        load_default=0.05, validate=validate.Range(min=1e-4, max=1.0))
    num_leaves = fields.Integer(load_default=7, validate=validate.Range(min=2, max=4096))
    min_child_samples = fields.Integer(
        load_default=100, validate=validate.Range(min=1, max=1_000_000))
    feature_fraction = fields.Float(
        load_default=0.8, validate=validate.Range(min=0.05, max=1.0))
    item_attributes = fields.List(
        fields.String(), load_default=list,
        metadata={"description": "numeric item attributes (catalogue ``attributes`` keys, "
                  "e.g. release_year) used as features"})
    interest_half_life_days = fields.Float(
        load_default=30.0, validate=validate.Range(min=0, min_inclusive=False),
        metadata={"description": "half-life of the interest profile's affinities"})
    blend_prior = fields.Float(
        load_default=0.0, validate=validate.Range(min=0.0, max=MAX_PRIOR),
        metadata={"description": "boost from the blend: each candidate starts at "
                  "blend_prior x (1 - position / rank_depth) and the trees learn corrections "
                  "to that order (0: learn the order from scratch)"})
    n_jobs = fields.Integer(
        load_default=1, validate=validate.Range(min=1, max=256),
        metadata={"description": "LightGBM threads (training and prediction)"})


@dataclass
class LtrReport:
    """What a training did: rows, rounds, and the ranker against the blend on the
    early-stopping users (NDCG@10 of their held-out items), and gain importances."""

    scorers: list[str]
    depth: int
    users: int = 0
    rows: int = 0
    best_iteration: int = 0
    ndcg_blend: float | None = None
    ndcg_ranker: float | None = None
    seconds: float = 0.0
    #: feature -> share of the total gain, largest first
    importances: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"scorers": self.scorers, "depth": self.depth, "users": self.users,
                "rows": self.rows, "best_iteration": self.best_iteration,
                "ndcg_blend": self.ndcg_blend, "ndcg_ranker": self.ndcg_ranker,
                "seconds": self.seconds, "importances": dict(self.importances)}

    def table(self, top: int = 15) -> str:
        """The largest importances as a Markdown table."""
        lines = ["| feature | gain share |", "|---|---|"]
        lines += [f"| {n} | {v:.3f} |" for n, v in list(self.importances.items())[:top]]
        return "\n".join(lines)


def _lightgbm() -> Any:
    try:
        import lightgbm
    except ImportError as exc:  # pragma: no cover - lightgbm is a requirement
        raise ConfigurationError(f"plugins.{NAME}: needs lightgbm (pip install "
                                 "'lightgbm>=4.0')") from exc
    return lightgbm


def ndcg_at(labels: list[np.ndarray], scores: list[np.ndarray], k: int = EVAL_AT) -> float:
    """Mean binary NDCG@k of the lists (each list: labels in candidate order)."""
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    values = []
    for y, s in zip(labels, scores, strict=True):
        order = np.lexsort((np.arange(len(s)), -s))[:k]
        ideal = discounts[:min(k, int(y.sum()))].sum()
        values.append(float((y[order] * discounts[:len(order)]).sum() / ideal))
    return float(np.mean(values)) if values else float("nan")


class LearningToRank(Plugin):
    """LambdaMART over the scorers' answers; see the module docstring."""

    Params = LtrParams

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.name = NAME

    @classmethod
    def from_config(cls, params: Mapping[str, Any], name: str | None = None) -> Self:
        plugin = super().from_config(params, name)
        plugin.name = name or NAME
        return plugin

    def _param(self, key: str) -> Any:
        return self.params.get(key, LtrParams().fields[key].load_default)

    def _attributes(self) -> list[str]:
        return list(self.params.get("item_attributes") or [])

    def _interest(self) -> UserInterestModel:
        return UserInterestModel(half_life_days=float(self._param("interest_half_life_days")))

    # ---- training --------------------------------------------------------------------

    @hookimpl
    def recsdk_fit(self, dataset: InteractionDataset, context: PluginContext) -> None:
        start = time.perf_counter()
        lgb = _lightgbm()
        seed = int(context.seed)
        depth = int(context.settings.pipeline["rank_depth"])
        lists: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
        scorers: list[str] = []
        for fold in range(int(self._param("folds"))):
            scorers = self._stack(dataset, context, depth, seed + fold, lists)
        if len(lists) < 2:
            raise ConfigurationError(
                f"plugins.{self.name}: only {len(lists)} validation user(s) have a held-out "
                "item among their candidates; the ranker needs more training data (or a "
                "larger [pipeline] rank_depth)")
        names = feature_names(scorers, self._attributes())
        split = split_users(np.array(sorted(lists)), float(self._param("stop_share")), seed)
        fit = [g for u in split.fit for g in lists[u]]
        stop = [g for u in split.stop for g in lists[u]]
        prior = float(self._param("blend_prior"))
        booster, best = self._train(lgb, names, fit, stop, seed, depth, prior)
        report = LtrReport(scorers, depth, len(lists),
                           sum(len(y) for groups in lists.values() for _, y in groups), best)
        report.ndcg_blend = ndcg_at([y for _, y in stop], [-np.arange(len(y)) for _, y in stop])
        report.ndcg_ranker = ndcg_at([y for _, y in stop],
                                     [booster.predict(x) + blend_prior([len(y)], depth, prior)
                                      for x, y in stop])
        self._serve(booster.model_to_string(), scorers, names, depth, prior, dataset,
                    ItemStats.fit(dataset, self._attributes()), UserStats.fit(dataset),
                    Timing.fit(dataset), self._interest().fit(dataset))
        report.importances = self._importances()
        report.seconds = round(time.perf_counter() - start, 3)
        self.report_ = report
        log.info("plugins.%s: LambdaMART on %d users (%d rows, depth %d), %d rounds; "
                 "early-stopping users' NDCG@%d %.4f (blend %.4f); top features by gain: %s",
                 self.name, report.users, report.rows, depth, best, EVAL_AT,
                 report.ndcg_ranker, report.ndcg_blend,
                 ", ".join(f"{n} {v:.3f}" for n, v in list(report.importances.items())[:8]))

    def _stack(self, dataset: InteractionDataset, context: PluginContext, depth: int,
               seed: int, lists: dict[int, list[tuple[np.ndarray, np.ndarray]]]) -> list[str]:
        """One carved split: scorers refitted on the rest, each validation user's
        candidates with features and labels added to ``lists``; returns the scorers."""
        rest, held = carve(dataset, float(self._param("validation_share")),
                           str(self._param("validation_split")), seed)
        truth = held.groupby("user")["item"].agg(lambda s: np.sort(s.to_numpy()))
        users = truth.index.to_numpy()
        limit = int(self._param("max_users"))
        if len(users) > limit:
            users = np.sort(np.random.default_rng(seed).choice(users, limit, replace=False))
        items, user_stats = ItemStats.fit(rest, self._attributes()), UserStats.fit(rest)
        timing = Timing.fit(rest)
        interest = InterestMatch(self._interest().fit(rest))
        with StackedScorers(context, rest, self.name) as stack:
            for user, top, scores in stack.candidates_of(list(dataset.user_ids[users]), depth):
                code = dataset.user_index[user]
                labels = np.isin(top, truth[code]).astype(np.float64)
                if not labels.any():
                    continue  # nothing to learn from a list without a held-out item
                request = RecommendationRequest(user_id=user, k=depth)
                x = feature_matrix(scores, stack.names, top, items, user_stats.row(code),
                                   timing.of(code, top),
                                   interest.of(request, dataset.item_ids[top]))
                lists.setdefault(code, []).append((x, labels))
            return stack.names

    def _train(self, lgb: Any, names: list[str], fit: list[tuple[np.ndarray, np.ndarray]],
               stop: list[tuple[np.ndarray, np.ndarray]], seed: int, depth: int,
               prior: float) -> tuple[Any, int]:
        """LightGBM LambdaRank on ``fit``, early-stopped on ``stop``, each boosted from
        the blend prior (``init_score``): (booster, rounds); the booster's predictions
        are the corrections, to add to the prior."""
        fit_groups, stop_groups = [len(y) for _, y in fit], [len(y) for _, y in stop]
        data = lgb.Dataset(np.vstack([x for x, _ in fit]), np.concatenate([y for _, y in fit]),
                           group=fit_groups, feature_name=names, params={"verbose": -1},
                           init_score=blend_prior(fit_groups, depth, prior))
        valid = lgb.Dataset(np.vstack([x for x, _ in stop]),
                            np.concatenate([y for _, y in stop]), group=stop_groups,
                            init_score=blend_prior(stop_groups, depth, prior), reference=data)
        params = {
            "objective": "lambdarank", "metric": "ndcg", "eval_at": [EVAL_AT],
            "learning_rate": float(self._param("learning_rate")),
            "num_leaves": int(self._param("num_leaves")),
            "min_data_in_leaf": int(self._param("min_child_samples")),
            "feature_fraction": float(self._param("feature_fraction")),
            "seed": seed, "deterministic": True, "force_row_wise": True,
            "num_threads": int(self._param("n_jobs")), "verbose": -1}
        rounds = int(self._param("n_estimators"))
        booster = lgb.train(params, data, num_boost_round=rounds, valid_sets=[valid],
                            callbacks=[lgb.early_stopping(
                                int(self._param("early_stopping_rounds")), verbose=False)])
        best = int(booster.best_iteration or rounds)
        text = booster.model_to_string(num_iteration=best)
        return lgb.Booster(model_str=text), best

    def _serve(self, model: str, scorers: list[str], names: list[str], depth: int,
               prior: float, dataset: InteractionDataset, items: ItemStats,
               users: UserStats, timing: Timing, interest: UserInterestModel) -> None:
        """Everything ``recsdk_rank`` reads, from the model text and fitted statistics;
        ``depth`` and ``prior`` as trained (the prior the corrections were learnt on)."""
        self.model_text_ = model
        self.booster_ = _lightgbm().Booster(model_str=model)
        self.scorers_, self.features_ = list(scorers), list(names)
        self.depth_, self.prior_ = int(depth), float(prior)
        self.items_, self.users_, self.timing_ = items, users, timing
        self.interest_model_ = interest
        self.interest_ = InterestMatch(interest)
        self.user_index_ = dataset.user_index

    def _importances(self) -> dict[str, float]:
        gain = np.asarray(self.booster_.feature_importance(importance_type="gain"), float)
        total = gain.sum() or 1.0
        order = np.lexsort((np.array(self.features_), -gain))
        return {self.features_[i]: float(gain[i] / total) for i in order}

    # ---- state -----------------------------------------------------------------------

    @hookimpl
    def recsdk_save_state(self) -> Mapping[str, np.ndarray] | None:
        if not hasattr(self, "booster_"):
            return None
        names = list(self._importances())
        return {
            "model": np.frombuffer(self.model_text_.encode("utf-8"), dtype=np.uint8),
            "scorers": np.array(self.scorers_, dtype=str),
            "features": np.array(self.features_, dtype=str),
            "blend_prior": np.array([self.depth_, self.prior_], dtype=np.float64),
            "items": self.items_.values, "users": self.users_.values,
            **{f"timing.{n}": getattr(self.timing_, n) for n in TIMING_ARRAYS},
            "importance.features": np.array(names, dtype=str),
            "importance.gain": np.array([self._importances()[n] for n in names]),
            **{INTEREST_PREFIX + k: v for k, v in self.interest_model_.state().items()},
        }

    @hookimpl
    def recsdk_load_state(self, state: Mapping[str, np.ndarray],
                          dataset: InteractionDataset) -> None:
        features = [str(f) for f in state["features"]]
        expected = feature_names([str(s) for s in state["scorers"]], self._attributes())
        if features != expected:
            raise ConfigurationError(
                f"plugins.{self.name}: the saved model's features differ from what the "
                "parameters give (item_attributes changed?); retrain")
        interest = self._interest().load_state(
            {k[len(INTEREST_PREFIX):]: v for k, v in state.items()
             if k.startswith(INTEREST_PREFIX)}, catalog=dataset.catalog)
        # saved before the blend prior existed: trained from scratch (prior 0)
        depth, prior = state.get("blend_prior", (0, 0.0))
        self._serve(bytes(np.asarray(state["model"], dtype=np.uint8)).decode("utf-8"),
                    [str(s) for s in state["scorers"]], features, int(depth), float(prior),
                    dataset,
                    ItemStats(np.asarray(state["items"])), UserStats(np.asarray(state["users"])),
                    Timing(*(np.asarray(state[f"timing.{n}"]) for n in TIMING_ARRAYS)),
                    interest)

    # ---- serving ---------------------------------------------------------------------

    @hookimpl
    def recsdk_rank(self, request: RecommendationRequest, candidates: CandidateSet,
                    scores: Mapping[str, np.ndarray]) -> np.ndarray | None:
        if not hasattr(self, "booster_"):
            return None
        code = self.user_index_.get(request.user_id, -1) if request.user_id else -1
        x = feature_matrix(scores, self.scorers_, np.asarray(candidates.codes), self.items_,
                           self.users_.row(code), self.timing_.of(code, candidates.codes),
                           self.interest_.of(request, candidates.ids))
        corrections = self.booster_.predict(x, num_threads=int(self._param("n_jobs")))
        return (np.asarray(corrections, dtype=np.float64)
                + blend_prior([len(candidates.codes)], self.depth_, self.prior_))
