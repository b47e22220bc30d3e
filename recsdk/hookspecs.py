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
    from recsdk.types import (
        CandidateSet,
        Event,
        Feedback,
        PluginContext,
        Ranking,
        RecommendationRequest,
    )

PROJECT = "recsdk"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


# --------------------------------------------------------------------------------------
# Lifecycle
# --------------------------------------------------------------------------------------


@hookspec
def recsdk_configure(context: PluginContext) -> None:
    """Called once at startup, after every enabled plugin is registered.

    ``context`` gives the validated settings, the catalogue and the storage handle.
    Broadcast: every implementation is called, return values are ignored. A plugin
    may keep references to what it needs from ``context``.
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
def recsdk_save_state() -> Mapping[str, np.ndarray] | None:
    """Return the learned state as named numpy arrays, or None when there is none.

    Called after ``recsdk_fit``; recsdk stores each plugin's arrays as one ``.npz``
    model artifact (never pickled). Called per plugin, so names need no prefix.
    """


@hookspec
def recsdk_load_state(state: Mapping[str, np.ndarray], dataset: InteractionDataset) -> None:
    """Restore what ``recsdk_save_state`` returned, in a new process.

    Called per plugin with that plugin's arrays only, and the dataset's vocabularies
    as they were at fit time (``dataset`` has no interactions in this call).
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
def recsdk_retrieve_candidates(request: RecommendationRequest, n: int) -> list[str] | None:
    """Return up to ``n`` item ids worth scoring for ``request``, or None.

    Merge: the union of all answers, in order of first appearance, is scored. When
    no implementation answers, every item in the catalogue is a candidate (full
    ranking), which is right for catalogues up to a few hundred thousand items.
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


# --------------------------------------------------------------------------------------
# Stage 4: rerank
# --------------------------------------------------------------------------------------


@hookspec
def recsdk_rerank(request: RecommendationRequest, ranking: Ranking) -> Ranking | None:
    """Filter or reorder ``ranking``; return the new ranking, or None to keep it.

    Chain: each implementation receives the previous one's output. Invariant,
    checked by recsdk: the result holds no duplicate item and only items of the
    ranking it received (a reranker may drop items but never adds them). recsdk cuts
    the final ranking to ``request.k`` and refills from further down the scored list
    when filters leave too few. A reranker that breaks the invariant is skipped.
    """


# --------------------------------------------------------------------------------------
# Stage 5: log feedback
# --------------------------------------------------------------------------------------


@hookspec
def recsdk_log_feedback(feedback: list[Feedback]) -> None:
    """Called with feedback on served recommendations, after it is stored.

    Broadcast: every implementation is called, return values are ignored. Each
    item names the request it answers, the variant and the plugins that produced
    it, so bandits and monitors can credit the right arm.
    """
