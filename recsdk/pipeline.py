"""The request path: features, candidates, blended scores, the rerank chain, fallback.

One failing or slow plugin never fails a request: its answer is dropped for that
request, the failure is logged and counted, the fallback plugin fills the list and the
result says it was degraded.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from recsdk.catalog import Catalog
from recsdk.config import Settings
from recsdk.dataset import InteractionDataset
from recsdk.plugin_manager import HookResult, PluginManager
from recsdk.types import (
    CandidateSet,
    Ranking,
    RecommendationRequest,
    RecommendationResult,
    RecommendedItem,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelState:
    """What the request path reads: the catalogue, the fitted vocabulary, all candidates."""

    catalog: Catalog
    dataset: InteractionDataset
    all_candidates: CandidateSet

    @classmethod
    def build(cls, catalog: Catalog, dataset: InteractionDataset) -> ModelState:
        ids = catalog.ids if len(catalog) else dataset.item_ids
        ids = np.asarray(ids, dtype=object)
        return cls(catalog, dataset, CandidateSet(ids, dataset.item_codes(ids)))

    def candidates(self, item_ids: Sequence[str]) -> CandidateSet:
        ids = np.asarray(item_ids, dtype=object)
        return CandidateSet(ids, self.dataset.item_codes(ids))


@dataclass
class _Blend:
    scores: np.ndarray
    used: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def normalise(scores: np.ndarray) -> np.ndarray:
    """Min-max scale finite scores to [0, 1] so plugins blend on one scale."""
    finite = np.isfinite(scores)
    if not finite.any():
        return scores
    lo, hi = scores[finite].min(), scores[finite].max()
    if hi <= lo:
        return np.where(finite, 1.0, np.nan)
    return (scores - lo) / (hi - lo)


def blend(answers: Sequence[tuple[np.ndarray, float]], n: int) -> np.ndarray:
    """Weighted mean of normalised answers; a NaN answer does not count for that item."""
    if not answers:
        return np.full(n, np.nan)
    if len(answers) == 1:
        return answers[0][0]
    total = np.zeros(n)
    weight = np.zeros(n)
    for scores, w in answers:
        s = normalise(scores)
        finite = np.isfinite(s)
        total[finite] += w * s[finite]
        weight[finite] += w
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(weight > 0, total / weight, np.nan)


class Pipeline:
    """Runs one recommendation request through the five stages' hooks."""

    def __init__(self, plugins: PluginManager, settings: Settings) -> None:
        self.plugins = plugins
        self.settings = settings
        self.timeout_ms = float(settings.pipeline["timeout_ms"])
        self.fallback = settings.pipeline["fallback"]

    # ---- configuration -------------------------------------------------------------

    def scorer_weights(self, placement: str) -> dict[str, float]:
        """Plugin weights for a placement: placement overrides over plugin settings."""
        weights = {name: cfg.weight for name, cfg in self.plugins.settings.items()}
        overrides = self.settings.placements.get(placement, {}).get("weights", {})
        weights.update({k: float(v) for k, v in overrides.items()})
        implementers = set(self.plugins.implementers("recsdk_score"))
        return {n: w for n, w in weights.items() if n in implementers and w > 0}

    # ---- stages ----------------------------------------------------------------------

    def _features(self, request: RecommendationRequest, failures: list[str]) -> None:
        for r in self.plugins.call_each("recsdk_extract_features", timeout_ms=self.timeout_ms,
                                        request=request):
            if not r.ok:
                failures.append(f"{r.plugin}.extract_features: {r.error}")
            elif r.value is not None:
                request.features[r.plugin] = r.value

    def _candidates(self, request: RecommendationRequest, state: ModelState,
                    failures: list[str]) -> CandidateSet:
        limit = int(self.settings.pipeline["candidate_limit"])
        results = self.plugins.call_each("recsdk_retrieve_candidates",
                                         timeout_ms=self.timeout_ms, request=request, n=limit)
        ids: dict[str, None] = {}
        for r in results:
            if not r.ok:
                failures.append(f"{r.plugin}.retrieve_candidates: {r.error}")
            elif r.value is not None:
                ids.update(dict.fromkeys(map(str, r.value)))
        if not ids:
            return state.all_candidates
        return state.candidates(list(ids))

    def _score(self, hook: str, names: Mapping[str, float], n: int,
               **kwargs: object) -> _Blend:
        results = self.plugins.call_each(hook, timeout_ms=self.timeout_ms, only=list(names),
                                         **kwargs)
        answers: list[tuple[np.ndarray, float]] = []
        out = _Blend(np.full(n, np.nan))
        for r in results:
            value = self._checked_scores(r, n, hook)
            if isinstance(value, str):
                out.failures.append(value)
            elif value is not None:
                answers.append((value, names[r.plugin]))
                out.used.append(r.plugin)
        out.scores = blend(answers, n)
        return out

    def _checked_scores(self, r: HookResult, n: int, hook: str) -> np.ndarray | str | None:
        short = hook.removeprefix("recsdk_")
        if not r.ok:
            return f"{r.plugin}.{short}: {r.error}"
        if r.value is None:
            return None
        scores = np.asarray(r.value, dtype=np.float64)
        if scores.shape != (n,):
            msg = f"{r.plugin}.{short}: returned shape {scores.shape}, expected ({n},)"
            self.plugins.telemetry.plugin_failures.labels(
                plugin=r.plugin, hook=hook, kind="bad_result").inc()
            log.warning(msg)
            return msg
        return scores

    def _rerank(self, request: RecommendationRequest, ranking: Ranking,
                failures: list[str]) -> Ranking:
        for impl in self.plugins.implementers("recsdk_rerank"):
            (r,) = self.plugins.call_each("recsdk_rerank", timeout_ms=self.timeout_ms,
                                          only=[impl], request=request, ranking=ranking)
            if not r.ok:
                failures.append(f"{r.plugin}.rerank: {r.error}")
                continue
            if r.value is None:
                continue
            problem = _rerank_violation(ranking, r.value)
            if problem:
                self.plugins.telemetry.plugin_failures.labels(
                    plugin=r.plugin, hook="recsdk_rerank", kind="bad_result").inc()
                log.warning("reranker %s skipped: %s", r.plugin, problem)
                failures.append(f"{r.plugin}.rerank: {problem}")
                continue
            ranking = r.value
        return ranking

    def _top(self, request: RecommendationRequest, candidates: CandidateSet,
             scores: np.ndarray, exclude: set[str], failures: list[str]) -> Ranking:
        """Best ``k`` after reranking, widening the slice until filters leave enough."""
        order_scores = np.where(np.isfinite(scores), scores, -np.inf)
        valid = int(np.isfinite(scores).sum())
        k = request.k
        m = min(valid, k * 2 + len(request.history.item_ids) + len(exclude) + 10)
        while True:
            if m <= 0:
                return Ranking([], [])
            top = np.argpartition(-order_scores, m - 1)[:m] if m < len(scores) else np.arange(
                len(scores))
            top = top[np.lexsort((candidates.ids[top].astype(str), -order_scores[top]))]
            top = top[np.isfinite(order_scores[top])]
            ranking = Ranking(
                [i for i in candidates.ids[top] if i not in exclude],
                [float(order_scores[t]) for t, i in zip(top, candidates.ids[top], strict=True)
                 if i not in exclude],
            )
            ranked = self._rerank(request, ranking, failures)
            if len(ranked) >= k or m >= valid:
                return Ranking(ranked.item_ids[:k], ranked.scores[:k])
            m = min(valid, m * 4)

    # ---- entry points ----------------------------------------------------------------

    def recommend(self, request: RecommendationRequest, state: ModelState,
                  config_hash: str) -> RecommendationResult:
        failures: list[str] = []
        request.catalog = state.catalog
        self._features(request, failures)
        candidates = self._candidates(request, state, failures)
        weights = self.scorer_weights(request.placement)
        blended = self._score("recsdk_score", weights, len(candidates), request=request,
                              candidates=candidates)
        failures += blended.failures
        ranking = self._top(request, candidates, blended.scores, set(), failures)
        used = list(blended.used)
        if len(ranking) < request.k:
            ranking, used = self._fill(request, candidates, ranking, used, failures)
        return self._result(request, ranking, used, failures, config_hash)

    def _fill(self, request: RecommendationRequest, candidates: CandidateSet,
              ranking: Ranking, used: list[str], failures: list[str],
              exclude: set[str] | None = None) -> tuple[Ranking, list[str]]:
        """Top up a short list with the fallback plugin's ranking (popularity)."""
        if self.fallback not in self.plugins.settings:
            return ranking, used
        fb = self._score("recsdk_score", {self.fallback: 1.0}, len(candidates),
                         request=request, candidates=candidates)
        failures += fb.failures
        if not fb.used:
            return ranking, used
        need = request.k - len(ranking)
        extra = self._top(
            RecommendationRequest(**{**_fields(request), "k": need}),
            candidates, fb.scores, set(ranking.item_ids) | (exclude or set()), failures,
        )
        # fallback items rank below every primary item, in the fallback's order
        floor = min(ranking.scores, default=0.0)
        scores = [floor - 1e-9 * (i + 1) for i in range(len(extra))] if ranking else list(
            extra.scores)
        merged = Ranking(ranking.item_ids + extra.item_ids, ranking.scores + scores)
        return merged, [*used, *(u for u in fb.used if u not in used)]

    def similar_items(self, item_id: str, k: int, state: ModelState,
                      config_hash: str, placement: str = "similar") -> RecommendationResult:
        failures: list[str] = []
        request = RecommendationRequest(user_id=None, k=k, placement=placement,
                                        catalog=state.catalog)
        candidates = state.all_candidates
        weights = self.scorer_weights(placement)
        implementers = set(self.plugins.implementers("recsdk_score_similar"))
        weights = {n: w for n, w in weights.items() if n in implementers} or {
            n: 1.0 for n in implementers}
        blended = self._score("recsdk_score_similar", weights, len(candidates),
                              item_id=item_id, candidates=candidates, catalog=state.catalog)
        failures += blended.failures
        ranking = self._top(request, candidates, blended.scores, {item_id}, failures)
        used = list(blended.used)
        if len(ranking) < k:
            ranking, used = self._fill(request, candidates, ranking, used, failures,
                                       exclude={item_id})
        return self._result(request, ranking, used, failures, config_hash)

    def _result(self, request: RecommendationRequest, ranking: Ranking, used: list[str],
                failures: list[str], config_hash: str) -> RecommendationResult:
        items = [RecommendedItem(i, float(s), p + 1)
                 for p, (i, s) in enumerate(zip(ranking.item_ids, ranking.scores, strict=True))]
        return RecommendationResult(
            request_id=request.request_id, items=items, placement=request.placement,
            variant=request.variant, plugins=used, config_hash=config_hash,
            degraded=bool(failures), failures=failures,
        )


def _fields(request: RecommendationRequest) -> dict[str, object]:
    return {f: getattr(request, f) for f in request.__slots__}  # type: ignore[attr-defined]


def _rerank_violation(before: Ranking, after: object) -> str | None:
    if not isinstance(after, Ranking):
        return f"returned {type(after).__name__}, expected Ranking"
    if len(set(after.item_ids)) != len(after.item_ids):
        return "returned duplicate items"
    if not set(after.item_ids) <= set(before.item_ids):
        return "added items that were not in the ranking"
    return None
