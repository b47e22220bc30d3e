"""Every hook specification of recsdk, grouped by pipeline stage.

Each function here does nothing: its docstring is the contract. recsdk always calls
hooks with keyword arguments, so an implementation may accept any subset of a spec's
arguments, and new arguments can be added later without breaking plugins.

recsdk calls each implementation on its own (see :mod:`recsdk.plugin_manager`) so that
one plugin that raises or runs past its time budget is skipped for that call, logged
and counted, without failing the others. The call shapes are:

* **broadcast**: every implementation is called, return values are ignored;
* **merge**: every implementation is called, the answers are combined as stated;
* **chain**: implementations are called in turn, each on the previous one's output;
* **blend**: every implementation is called, answers are blended with configured weights.

Order: pluggy's (``tryfirst``/``trylast`` first, otherwise last registered first).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import numpy as np

    from recsdk.catalog import Catalog
    from recsdk.dataset import InteractionDataset
    from recsdk.registry import ArtifactReader, ArtifactWriter
    from recsdk.types import (
        CandidateSet,
        Event,
        Feedback,
        PluginContext,
        Ranking,
        RecommendationRequest,
        RecommendationResult,
        Retrieved,
    )

PROJECT = "recsdk"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


# --------------------------------------------------------------------------------------
# Lifecycle
# --------------------------------------------------------------------------------------


@hookspec
def recsdk_configure(context: PluginContext) -> None:
    """Called once per plugin instance, after every enabled plugin is registered.

    ``context`` gives the validated settings, the catalogue snapshot
    (``context.catalog``), the storage handle, the seed and the device. Broadcast:
    every implementation is called, return values are ignored. A plugin may keep
    references to what it needs from ``context``.

    recsdk makes a fresh set of plugin instances for every training run and for every
    run a process loads (so that training never touches the objects that serve), and
    configures each set before ``recsdk_fit`` or ``recsdk_load_state``.
    """


@hookspec
def recsdk_fit(dataset: InteractionDataset, context: PluginContext) -> None:
    """Train on ``dataset`` (users x items interactions, catalogue, timestamps).

    Called by ``recsdk train`` and :meth:`recsdk.RecSDK.fit`. Broadcast: every
    implementation is called, return values are ignored. A failure here is not
    isolated: training that breaks stops the ``fit`` call with the plugin's name.
    Item and user codes in ``dataset`` are the ones the request path will use.
    """


@hookspec
def recsdk_save_state(artifacts: ArtifactWriter) -> Mapping[str, np.ndarray] | None:
    """Return the learned state as named numpy arrays, or None when there is none.

    Called after ``recsdk_fit``, per plugin (names need no prefix). recsdk stores the
    arrays in the training run's registry entry: ``.npz`` in the database when small,
    memory-mappable ``.npy`` files beyond ``[models] inline_max_bytes`` (never pickled).

    Large artifacts of other kinds go through ``artifacts`` (an
    :class:`recsdk.registry.ArtifactWriter` owned by this plugin and run):
    ``artifacts.save_torch(name, model.state_dict())``, ``artifacts.save_arrays(name,
    arrays)`` or ``with artifacts.file(name) as path: index.save(path)``; each file is
    recorded with its sha256. A failure here fails the training run.
    """


@hookspec
def recsdk_load_state(
    state: Mapping[str, np.ndarray], dataset: InteractionDataset, artifacts: ArtifactReader
) -> None:
    """Restore what ``recsdk_save_state`` saved, into a fresh plugin instance.

    Called per plugin with that plugin's arrays only (possibly memory-mapped, so
    treat them as read-only), the dataset's vocabularies as they were at fit time
    (``dataset`` has no interactions in this call), and ``artifacts`` (an
    :class:`recsdk.registry.ArtifactReader`: ``load_torch(name)`` loads with
    ``weights_only=True``, ``path(name)`` gives a file whose sha256 was checked).
    A plugin that raises here abstains until the next run; the others still load.
    """


@hookspec
def recsdk_catalog_refreshed(catalog: Catalog) -> None:
    """A new catalogue snapshot is about to be served (items or categories changed).

    Broadcast, off the request path: the snapshot is swapped in only after every
    implementation returned, so derived structures built here (category indexes,
    per-category pools) are ready for the snapshot's first request. Not called at
    training or loading: ``recsdk_fit`` and ``recsdk_load_state`` get the catalogue
    with their dataset. A plugin that raises here is logged and the snapshot is
    served anyway.
    """


# --------------------------------------------------------------------------------------
# Stage 1: collect event
# --------------------------------------------------------------------------------------


@hookspec
def recsdk_collect_event(events: list[Event], weights: Mapping[str, float]) -> None:
    """Called with each batch of events after it is durably stored.

    ``weights`` maps event types to their configured implicit-feedback strength.

    Broadcast: every implementation is called, return values are ignored; an
    implementation must not change the events. Use it for incremental state
    (trending counters, recent activity, interest models). Events that were
    duplicates of already stored ones (same ``event_id``) are not passed again.
    """


# --------------------------------------------------------------------------------------
# Stage 2: extract features
# --------------------------------------------------------------------------------------


@hookspec
def recsdk_extract_features(request: RecommendationRequest) -> Mapping[str, Any] | None:
    """Return features of the request's user/session/context, or None.

    Merge: every implementation is called; the answers are merged into
    ``request.features`` under the plugin's name (``request.features[name]``), so
    two plugins never overwrite each other. Called before scoring; scorers read
    ``request.features``. Must not mutate the request otherwise.
    """


# --------------------------------------------------------------------------------------
# Stage 3: score (with candidate retrieval before it)
# --------------------------------------------------------------------------------------


@hookspec
def recsdk_retrieve_candidates(
    request: RecommendationRequest, n: int
) -> Retrieved | list[str] | None:
    """Return up to ``n`` items worth scoring for ``request``, best first, or None.

    ``n`` is the retriever's quota: its ``quota`` key under ``[plugins.NAME]``, else
    ``[pipeline] candidate_limit``. Answer a :class:`recsdk.types.Retrieved` (ids and
    the retriever's own scores) or a plain list of ids; longer answers are cut to ``n``.

    Merge: the union of all answers, in order of first appearance, is scored; each
    retriever's scores reach the scorers as ``candidates.retrieval[name]`` (NaN for
    items it did not retrieve), so the retriever's name travels with its scores. When
    no implementation answers, every catalogue item is a candidate (full ranking),
    which is right for catalogues up to a few hundred thousand items.
    :class:`recsdk.retrieval.EmbeddingRetriever` turns user and item vectors into a
    retriever.
    """


@hookspec
def recsdk_score(request: RecommendationRequest, candidates: CandidateSet) -> np.ndarray | None:
    """Score ``candidates`` for ``request``: a float array, one value per candidate.

    Blend: every enabled scoring plugin is called; each answer is normalised and
    summed with the plugin's configured ``weight``. Higher is better. Use NaN for a
    candidate the plugin cannot score (unknown user or item); the blend then uses
    the other plugins' scores for it. Return None to abstain for the whole request
    (a cold-start user, say). Must not mutate the request or the candidates.
    """


@hookspec
def recsdk_score_users(user_ids: list[str], candidates: CandidateSet) -> np.ndarray | None:
    """Batch scoring for offline use: a ``len(user_ids) x len(candidates)`` float array.

    Optional fast path of ``recsdk_score`` for evaluation and ``recommend-batch``,
    where the users' histories are the training data the plugin was fitted on. Same
    meaning of NaN; return None when the plugin has no batch path (recsdk then calls
    ``recsdk_score`` once per user).
    """


@hookspec
def recsdk_score_similar(
    item_id: str, candidates: CandidateSet, catalog: Catalog | None
) -> np.ndarray | None:
    """Score how similar each candidate is to ``item_id``; like ``recsdk_score``.

    ``catalog`` is the current catalogue snapshot (categories, availability).

    Blend, NaN and None as in ``recsdk_score``. Used by ``similar_items``; the
    item itself is removed from the result by recsdk.
    """


@hookspec
def recsdk_predict_ratings(
    request: RecommendationRequest, candidates: CandidateSet
) -> np.ndarray | None:
    """Predict the explicit rating (stars) the request's user would give each candidate.

    For shops that show predicted stars: one float per candidate on the shop's own
    rating scale, NaN where the plugin cannot predict (unknown item), None to abstain
    (a user it knows nothing about). First answer: implementations are asked in the
    configured order and the first one that answers is used; its name travels with
    the prediction. Not blended: a rating is a number a page shows, not a rank.
    """


@hookspec
def recsdk_rank(request: RecommendationRequest, candidates: CandidateSet,
                scores: Mapping[str, np.ndarray]) -> np.ndarray | None:
    """Stage 3b, the final ranker: score the blend's best candidates anew, or None.

    Called once per request after the blend, with ``candidates`` the best
    ``[pipeline] rank_depth`` candidates by the blended score (best first, excluded
    items left out; the retrievers' scores on them in ``candidates.retrieval``) and
    ``scores`` each scoring plugin's own answer on them: its name to a float array,
    not normalised, NaN where it gave none (a plugin that abstained for the whole
    request, or failed, is all NaN). Return one float per candidate, higher better:
    these candidates are ordered by it, above every candidate beyond the depth, which
    keep their blend order (as do candidates it ties). NaN: the ranker cannot place
    that candidate; it keeps its blend order below the ones the ranker scored. None:
    abstain, the blend's order stands.

    First answer: implementations are asked in order and the first one that answers
    is used. A ranker that raises, overruns its budget or answers the wrong shape is
    skipped and the result is marked degraded; the blend's order then stands. The
    rerank chain (stage 4) runs after it. Learning-to-rank stacking (the ``ltr``
    plugin) is the use: a model over the scorers' answers.
    """


# --------------------------------------------------------------------------------------
# Stage 4: rerank
# --------------------------------------------------------------------------------------


@hookspec
def recsdk_rerank(request: RecommendationRequest, ranking: Ranking) -> Ranking | None:
    """Filter or reorder ``ranking``; return the new ranking, or None to keep it.

    Chain: each implementation receives the previous one's output. Invariant,
    checked by recsdk: the result holds no duplicate item and only items of the
    ranking it received (a reranker may drop items but never adds them). A reranker
    that breaks the invariant is skipped. recsdk cuts the final ranking to
    ``request.k``.

    A stochastic reranker (a bandit) returns ``Ranking.propensities``: per position, the
    probability that its policy put that item there, in (0, 1] (None for items it did
    not choose). They reach ``RecommendedItem.propensity`` and the impressions table;
    such lists are never served from the result cache. A later reranker that returns
    a new Ranking without them drops them: order stochastic rerankers last
    (``trylast``).

    When it is called: once per request, with the best ``4k + len(history) + 50``
    scored items (at least). Only when the chain leaves fewer than ``k`` items is the
    chain run again, on a ranking four times as long (until the scored list is
    exhausted); and once more on the fallback plugin's ranking if the list is still
    short. A reranker must therefore be a function of its input, not count calls.
    """


# --------------------------------------------------------------------------------------
# Stage 5: log feedback (and what was served)
# --------------------------------------------------------------------------------------


@hookspec
def recsdk_served(request: RecommendationRequest, result: RecommendationResult) -> None:
    """Called after a list was served to a user, with what was shown.

    ``result.items`` holds each shown item with its ``position`` (1-based) and its
    ``source``: the scoring plugin that contributed most to its blended score (the
    fallback's name for fill-ins). ``result.request_id``, ``placement``, ``variant``
    and ``model_run`` identify the impression for later feedback. Cached answers are
    served, and reported, too.

    Broadcast, off the request path: recsdk calls it from its logging thread shortly
    after the answer left, so a slow implementation never delays a page; return
    values are ignored. Bandits count pulls here; monitors count impressions.
    """


@hookspec
def recsdk_log_feedback(feedback: list[Feedback]) -> None:
    """Called with feedback on served recommendations, after it is stored.

    Broadcast: every implementation is called, return values are ignored. Each
    item names the request it answers, the variant and the plugins that produced
    it, so bandits and monitors can credit the right arm.
    """
