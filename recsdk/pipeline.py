"""The request path: features, candidates, blended scores, the final ranker, the rerank
chain, fallback.

One failing or slow plugin never fails a request: its answer is dropped for that
request, the failure is logged and counted, the fallback plugin fills the list and the
result says it was degraded.
"""

from __future__ import annotations

import itertools
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
    RatingPrediction,
    RecommendationRequest,
    RecommendationResult,
    RecommendedItem,
    Retrieved,
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

    def candidates(self, item_ids: Sequence[str],
                   retrieval: dict[str, np.ndarray] | None = None) -> CandidateSet:
        ids = np.asarray(item_ids, dtype=object)
        return CandidateSet(ids, self.dataset.item_codes(ids), retrieval or {})


@dataclass
class _Blend:
    scores: np.ndarray
    used: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    #: per candidate, the plugin whose weighted score contributed most (None: none)
    sources: np.ndarray | None = None
    #: each asked plugin's own (not normalised) answer; all NaN where it gave none
    answers: dict[str, np.ndarray] = field(default_factory=dict)

    def source_of(self, position: int) -> str | None:
        return None if self.sources is None else self.sources[position]


def normalise(scores: np.ndarray) -> np.ndarray:
    """Min-max scale finite scores to [0, 1] so plugins blend on one scale."""
    finite = np.isfinite(scores)
    if not finite.any():
        return scores
    lo, hi = scores[finite].min(), scores[finite].max()
    if hi <= lo:
        return np.where(finite, 1.0, np.nan)
    return (scores - lo) / (hi - lo)


def blend(answers: Sequence[tuple[np.ndarray, float]], n: int
          ) -> tuple[np.ndarray, np.ndarray | None]:
    """Weighted mean of normalised answers (a NaN answer does not count for that item),
    and per item the index of the answer contributing most to it."""
    if not answers:
        return np.full(n, np.nan), None
    if len(answers) == 1:
        return answers[0][0], np.zeros(n, dtype=np.int64)
    total = np.zeros(n)
    weight = np.zeros(n)
    contributions = np.full((len(answers), n), -np.inf)
    for a, (scores, w) in enumerate(answers):
        s = normalise(scores)
        finite = np.isfinite(s)
        total[finite] += w * s[finite]
        weight[finite] += w
        contributions[a, finite] = w * s[finite]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(weight > 0, total / weight, np.nan), contributions.argmax(axis=0)


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
        """The union of every retriever's answer, cut to its quota; all items if none."""
        limit = int(self.settings.pipeline["candidate_limit"])
        answers: list[tuple[str, list[str], list[float] | None]] = []
        names = self.plugins.implementers("recsdk_retrieve_candidates")
        quotas: dict[str, int] = {}
        for name in names:
            cfg = self.plugins.settings.get(name)
            quotas[name] = cfg.quota if cfg is not None and cfg.quota is not None else limit
        # retrievers with the same quota are asked at once (in parallel, as scorers are)
        results: dict[str, HookResult] = {}
        for quota in dict.fromkeys(quotas.values()):
            for r in self.plugins.call_each(
                    "recsdk_retrieve_candidates", timeout_ms=self.timeout_ms,
                    only=[n for n in names if quotas[n] == quota], request=request, n=quota):
                results[r.plugin] = r
        for name in names:
            r, quota = results[name], quotas[name]
            if not r.ok:
                failures.append(f"{r.plugin}.retrieve_candidates: {r.error}")
                continue
            got = _retrieved(r.value, quota)
            if isinstance(got, str):
                failures.append(f"{r.plugin}.retrieve_candidates: {got}")
            elif got is not None:
                answers.append((r.plugin, *got))
        if request.allowed is not None:
            allowed = list(dict.fromkeys(map(str, request.allowed)))
            if not answers:
                return state.candidates(allowed)
            keep = set(allowed)
            answers = [(n, [i for i in ids if i in keep],
                        None if sc is None else [s for i, s in zip(ids, sc, strict=True)
                                                 if i in keep]) for n, ids, sc in answers]
        if not answers:
            return state.all_candidates
        ids: dict[str, int] = {}
        for _, got_ids, _ in answers:
            for i in got_ids:
                ids.setdefault(i, len(ids))
        retrieval: dict[str, np.ndarray] = {}
        for name, got_ids, scores in answers:
            column = np.full(len(ids), np.nan)
            positions = [ids[i] for i in got_ids]
            column[positions] = scores if scores is not None else -np.arange(len(got_ids))
            retrieval[name] = column
        return state.candidates(list(ids), retrieval)

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
            out.answers[r.plugin] = (value if isinstance(value, np.ndarray)
                                     else np.full(n, np.nan))
        out.scores, winner = blend(answers, n)
        if winner is not None:
            out.sources = np.asarray(out.used, dtype=object)[winner]
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

    def _rank(self, request: RecommendationRequest, candidates: CandidateSet,
              blended: _Blend, used: list[str], failures: list[str],
              index: Mapping[str, int] | None = None) -> np.ndarray:
        """Stage 3b: the first final ranker's order over the blend's best
        ``rank_depth`` candidates, placed above the rest (see ``recsdk_rank``)."""
        names = self.plugins.implementers("recsdk_rank")
        order_scores = _order_scores(request, candidates, blended.scores, set(), index)
        m = min(int(self.settings.pipeline["rank_depth"]),
                int(np.isfinite(order_scores).sum()))
        if not names or m == 0:
            return blended.scores
        top = _best(order_scores, candidates.ids, m)
        ranked = CandidateSet(candidates.ids[top], candidates.codes[top],
                              {n: s[top] for n, s in candidates.retrieval.items()})
        scores = {n: s[top] for n, s in blended.answers.items()}
        for r in self.plugins.call_each("recsdk_rank", timeout_ms=self.timeout_ms, only=names,
                                        request=request, candidates=ranked, scores=scores):
            value = self._checked_scores(r, m, "recsdk_rank")
            if isinstance(value, str):
                failures.append(value)
            elif value is not None and np.isfinite(value).any():
                used.append(r.plugin)
                return _above_blend(order_scores, top, value)
        return blended.scores

    def _top(self, request: RecommendationRequest, candidates: CandidateSet,
             scores: np.ndarray, exclude: set[str], failures: list[str],
             positions: dict[str, int] | None = None,
             index: Mapping[str, int] | None = None) -> Ranking:
        """Best ``k`` after reranking; see ``recsdk_rerank`` for when the chain runs."""
        order_scores = _order_scores(request, candidates, scores, exclude, index)
        valid = int(np.isfinite(order_scores).sum())
        k = request.k
        m = min(valid, 4 * k + len(request.history.item_ids) + 50)
        while True:
            if m <= 0:
                return Ranking([], [])
            top = _best(order_scores, candidates.ids, m)
            ranking = Ranking(list(candidates.ids[top]), order_scores[top].tolist())
            if positions is not None:
                positions.update(zip(ranking.item_ids, top.tolist(), strict=True))
            ranked = self._rerank(request, ranking, failures)
            if len(ranked) >= k or m >= valid:
                return ranked.head(k)
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
        used = list(blended.used)
        index = state.dataset.item_index
        final = self._rank(request, candidates, blended, used, failures, index)
        positions: dict[str, int] = {}
        ranking = self._top(request, candidates, final, set(), failures, positions, index)
        sources = {i: blended.source_of(positions[i]) for i in ranking.item_ids}
        if len(ranking) < request.k:
            ranking, used = self._fill(request, candidates, ranking, used, failures,
                                       sources=sources, index=index)
        return self._result(request, ranking, used, failures, config_hash, sources)

    def _fill(self, request: RecommendationRequest, candidates: CandidateSet,
              ranking: Ranking, used: list[str], failures: list[str],
              exclude: set[str] | None = None, sources: dict[str, str | None] | None = None,
              index: Mapping[str, int] | None = None) -> tuple[Ranking, list[str]]:
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
            index=index,
        )
        if sources is not None:
            sources.update(dict.fromkeys(extra.item_ids, self.fallback))
        # fallback items rank below every primary item, in the fallback's order
        floor = min(ranking.scores, default=0.0)
        scores = [floor - 1e-9 * (i + 1) for i in range(len(extra))] if ranking else list(
            extra.scores)
        propensities = (None if ranking.propensities is None
                        else ranking.propensities + [None] * len(extra))
        merged = Ranking(ranking.item_ids + extra.item_ids, ranking.scores + scores,
                         propensities)
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
        positions: dict[str, int] = {}
        index = state.dataset.item_index
        ranking = self._top(request, candidates, blended.scores, {item_id}, failures,
                            positions, index)
        sources = {i: blended.source_of(positions[i]) for i in ranking.item_ids}
        used = list(blended.used)
        if len(ranking) < k:
            ranking, used = self._fill(request, candidates, ranking, used, failures,
                                       exclude={item_id}, sources=sources, index=index)
        return self._result(request, ranking, used, failures, config_hash, sources)

    def predict_ratings(self, request: RecommendationRequest, item_ids: Sequence[str],
                        state: ModelState) -> RatingPrediction:
        """The first rating predictor's answer for ``item_ids`` (see the hook's contract)."""
        candidates = state.candidates(item_ids)
        out = RatingPrediction(request.user_id, dict.fromkeys(map(str, item_ids)))
        names = self.plugins.implementers("recsdk_predict_ratings")
        for r in self.plugins.call_each("recsdk_predict_ratings", timeout_ms=self.timeout_ms,
                                        only=names, request=request, candidates=candidates):
            if out.plugin is not None:
                continue  # first answer only; the calls ran in parallel
            value = self._checked_scores(r, len(candidates), "recsdk_predict_ratings")
            if isinstance(value, str):
                out.failures.append(value)
            elif value is not None:
                out.plugin = r.plugin
                out.ratings = {str(i): (None if np.isnan(v) else float(v))
                               for i, v in zip(candidates.ids, value, strict=True)}
        return out

    def _result(self, request: RecommendationRequest, ranking: Ranking, used: list[str],
                failures: list[str], config_hash: str,
                sources: dict[str, str | None]) -> RecommendationResult:
        items = [RecommendedItem(i, float(s), p + 1, sources.get(i), ranking.propensity(p))
                 for p, (i, s) in enumerate(zip(ranking.item_ids, ranking.scores, strict=True))]
        return RecommendationResult(
            request_id=request.request_id, items=items, placement=request.placement,
            variant=request.variant, plugins=used, config_hash=config_hash,
            degraded=bool(failures), failures=failures,
        )


def _order_scores(request: RecommendationRequest, candidates: CandidateSet,
                  scores: np.ndarray, exclude: set[str],
                  index: Mapping[str, int] | None = None) -> np.ndarray:
    """``scores`` with -inf for NaN and for the request's (and ``exclude``'s) items."""
    order_scores = np.where(np.isfinite(scores), scores, -np.inf)
    exclude = exclude | request.exclude
    if exclude:
        order_scores[_excluded(candidates, exclude, index)] = -np.inf
    return order_scores


def _excluded(candidates: CandidateSet, exclude: set[str],
              index: Mapping[str, int] | None) -> np.ndarray:
    """Which candidates are in ``exclude``: by code through ``index`` (the vocabulary
    the candidates' codes come from), one vectorised pass instead of a Python test per
    candidate; by id for candidates without a code, or without an index."""
    ids = candidates.ids
    if index is None:
        return np.fromiter((i in exclude for i in ids), bool, len(candidates))
    codes = np.fromiter((index.get(i, -1) for i in exclude), np.int64, len(exclude))
    cand = np.asarray(candidates.codes, dtype=np.int64)
    hit = np.isin(cand, codes[codes >= 0])
    unknown = np.flatnonzero(cand < 0)
    if len(unknown):
        hit[unknown] = [ids[p] in exclude for p in unknown.tolist()]
    return hit


def _best(order_scores: np.ndarray, ids: np.ndarray, m: int) -> np.ndarray:
    """Positions of the best ``m`` finite scores, best first, ties by item id (also at
    the cut: every candidate tied with the m-th is sorted before cutting)."""
    n = len(order_scores)
    if m < n:
        kth = order_scores[np.argpartition(-order_scores, m - 1)[m - 1]]
        top = np.flatnonzero(order_scores >= kth)
    else:
        top = np.arange(n)
    top = top[np.lexsort((ids[top].astype(str), -order_scores[top]))][:m]
    return top[np.isfinite(order_scores[top])]


def _above_blend(order_scores: np.ndarray, top: np.ndarray, ranked: np.ndarray) -> np.ndarray:
    """Final scores: the ranker's on ``top`` (where finite), then the rest of ``top`` and
    then every other candidate, both in blend order; -inf stays -inf (never listed).

    The blend is min-max scaled to [0, 1] and shifted under the ranker's lowest score:
    ``top`` items the ranker left NaN into [lo - 0.75, lo - 0.25], the others into
    [lo - 2, lo - 1]."""
    ranked = _untied(np.where(np.isfinite(ranked), ranked, np.nan))
    lo = float(np.nanmin(ranked))
    scaled = np.nan_to_num(normalise(np.where(np.isfinite(order_scores), order_scores,
                                              np.nan)), nan=0.0)
    out = np.where(np.isfinite(order_scores), lo - 2.0 + scaled, -np.inf)
    unscored = np.isnan(ranked)
    out[top[unscored]] = lo - 0.75 + 0.5 * scaled[top[unscored]]
    out[top[~unscored]] = ranked[~unscored]
    return out


def _untied(ranked: np.ndarray) -> np.ndarray:
    """``ranked`` with ties among finite scores broken by position (the blend's order),
    each tied score lowered by the smallest float steps, so that the final sort, whose
    ties go by item id, keeps the blend's order among candidates the ranker tied."""
    out = ranked.copy()
    scored = np.flatnonzero(np.isfinite(out))
    order = scored[np.lexsort((scored, -out[scored]))]
    for previous, current in itertools.pairwise(order):
        if out[current] >= out[previous]:
            out[current] = np.nextafter(out[previous], -np.inf)
    return out


def _fields(request: RecommendationRequest) -> dict[str, object]:
    return {f: getattr(request, f) for f in request.__slots__}  # type: ignore[attr-defined]


def _retrieved(value: object, quota: int) -> tuple[list[str], list[float] | None] | str | None:
    """A retriever's answer as (ids, scores or None), cut to its quota; or a problem."""
    if value is None:
        return None
    if isinstance(value, Retrieved):
        ids, scores = [str(i) for i in value.ids], value.scores
    elif isinstance(value, list | tuple | np.ndarray):
        ids, scores = [str(i) for i in value], None
    else:
        return f"returned {type(value).__name__}, expected Retrieved or a list of ids"
    if len(set(ids)) != len(ids):
        return "returned duplicate items"
    ids = ids[:quota]
    if scores is not None:
        scores = [float(x) for x in scores[:quota]]
    return ids, scores


def _rerank_violation(before: Ranking, after: object) -> str | None:
    if not isinstance(after, Ranking):
        return f"returned {type(after).__name__}, expected Ranking"
    if len(set(after.item_ids)) != len(after.item_ids):
        return "returned duplicate items"
    if not set(after.item_ids) <= set(before.item_ids):
        return "added items that were not in the ranking"
    if after.propensities is not None and not all(
            p is None or (isinstance(p, float | int) and 0.0 < p <= 1.0)
            for p in after.propensities):
        return "returned propensities outside (0, 1]"
    return None
