"""What the hooks hand plugins: timestamped history, scored retrieval with quotas,
``recsdk_served``, the catalogue at configure time, one rerank call per request."""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np

from recsdk import Plugin, hookimpl
from recsdk.retrieval import EmbeddingRetriever
from recsdk.types import Retrieved
from tests.core.shop import fill

POP = {"popularity": {}}


class Probe(Plugin):
    """Records what it is given."""

    def __init__(self, **params):
        super().__init__(**params)
        self.requests = []
        self.served = []
        self.reranks = 0
        self.catalog = None

    @hookimpl
    def recsdk_configure(self, context):
        self.catalog = context.catalog

    @hookimpl
    def recsdk_extract_features(self, request):
        self.requests.append(request)

    @hookimpl
    def recsdk_rerank(self, ranking):
        self.reranks += 1
        return ranking

    @hookimpl
    def recsdk_served(self, request, result):
        self.served.append((request, result))


class Shelf(Plugin):
    """Retrieves a fixed shelf with its own scores."""

    @hookimpl
    def recsdk_retrieve_candidates(self, n):
        ids = ["i9", "i8", "i7", "i6", "i5"]
        return Retrieved(ids, [5.0, 4.0, 3.0, 2.0, 1.0])


class Listing(Plugin):
    @hookimpl
    def recsdk_retrieve_candidates(self, n):
        return ["i1", "i9", "i2"]


class Reading(Plugin):
    """Scores candidates by the shelf's retrieval score."""

    seen: ClassVar[dict] = {}
    ids: ClassVar[list] = []

    @hookimpl
    def recsdk_score(self, candidates):
        type(self).seen = {k: v.copy() for k, v in candidates.retrieval.items()}
        type(self).ids = list(candidates.ids)
        return np.nan_to_num(candidates.retrieval.get("shelf", np.zeros(len(candidates))),
                             nan=0.0)


def test_history_carries_time_value_and_session_for_any_id(make_sdk):
    sdk = make_sdk({"plugins": {**POP, "probe": {}}}, plugins={"probe": Probe})
    odd = 'tab\there "quote" \\ new\nline'
    sdk.track_many([
        {"user_id": "u1", "item_id": "a", "type": "view", "session_id": "s1",
         "timestamp": "2026-01-01T10:00:00Z"},
        {"user_id": "u1", "item_id": odd, "type": "rating", "value": 4.5,
         "session_id": "s1", "timestamp": "2026-01-01T10:05:00Z"},
    ])
    for attempt in range(2):  # from the database, then from the cache
        if attempt:
            sdk.forget_recent(["u1"])
        history = sdk.history("u1")
        assert history.item_ids == ["a", odd]
        assert history.types == ["view", "rating"]
        assert history.timestamps[1] - history.timestamps[0] == 300
        assert math.isnan(history.values[0]) and history.values[1] == 4.5
        assert history.session_ids == ["s1", "s1"]
    sdk.fit()
    sdk.recommend("u1", k=2)
    seen = sdk.plugins.get("probe").requests[-1].history
    assert seen.item_ids[-1] == odd and seen.values[-1] == 4.5


def test_history_length_is_configurable(make_sdk):
    sdk = make_sdk({"plugins": POP, "cache": {"recent_events": 3}})
    sdk.track_many([{"user_id": "u", "item_id": f"i{n}", "type": "view",
                     "timestamp": f"2026-01-01T10:0{n}:00Z"} for n in range(6)])
    assert sdk.history("u").item_ids == ["i3", "i4", "i5"]
    sdk.forget_recent(["u"])
    assert sdk.history("u").item_ids == ["i3", "i4", "i5"]


def test_retrievers_answer_ids_with_scores_within_their_quota(make_sdk):
    sdk = make_sdk({"plugins": {**POP, "shelf": {"quota": 3, "weight": 0}, "listing": {},
                                "reading": {}}},
                   plugins={"shelf": Shelf, "listing": Listing, "reading": Reading})
    fill(sdk)
    sdk.fit()
    result = sdk.recommend("u20", k=3, log_request=False)
    # union in order of first appearance, the shelf cut to its quota of 3
    assert set(Reading.ids) == {"i9", "i8", "i7", "i1", "i2"}
    shelf = dict(zip(Reading.ids, Reading.seen["shelf"], strict=True))
    assert shelf["i9"] == 5.0 and math.isnan(shelf["i1"])
    listing = dict(zip(Reading.ids, Reading.seen["listing"], strict=True))
    assert listing["i1"] > listing["i9"] > listing["i2"]  # rank order when no scores
    assert not result.degraded
    assert set(result.item_ids) <= set(Reading.ids)


def test_candidates_and_exclude_restrict_a_request(make_sdk):
    sdk = make_sdk({"plugins": POP})
    fill(sdk)
    sdk.fit()
    shelf = ["i5", "i6", "i7", "i8"]
    result = sdk.recommend("newcomer", k=3, candidates=shelf, exclude=["i5"])
    assert result.item_ids == ["i6", "i7", "i8"]
    assert sdk.recommend("newcomer", k=3).item_ids[0] == "i0"


def test_embedding_retriever_is_exact_top_n():
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(50, 8))
    query = rng.normal(size=8)
    got = EmbeddingRetriever([f"i{n}" for n in range(50)], vectors).retrieve(query, 5)
    best = np.argsort(-(vectors @ query))[:5]
    assert got.ids == [f"i{n}" for n in best]
    assert np.allclose(got.scores, (vectors @ query)[best], atol=1e-5)
    assert EmbeddingRetriever(["a"], np.ones((1, 2))).retrieve(None, 3) is None


def test_served_hook_sees_items_positions_and_their_source(make_sdk):
    sdk = make_sdk({"plugins": {**POP, "probe": {}}}, plugins={"probe": Probe})
    fill(sdk)
    sdk.fit()
    first = sdk.recommend("u1", k=4)
    cached = sdk.recommend("u1", k=4)
    sdk.served.join()
    probe = sdk.plugins.get("probe")
    assert [r.request_id for _, r in probe.served] == [first.request_id, cached.request_id]
    request, result = probe.served[0]
    assert request.user_id == "u1" and result.model_run == sdk.model_run
    assert [i.position for i in result.items] == [1, 2, 3, 4]
    assert {i.source for i in result.items} == {"popularity"}


def test_configure_sees_the_catalogue_and_rerank_runs_once(make_sdk):
    sdk = make_sdk({"plugins": {**POP, "probe": {}}, "cache": {"result_ttl_s": 0}},
                   plugins={"probe": Probe})
    fill(sdk)
    sdk.fit()
    probe = sdk.plugins.get("probe")
    assert probe.catalog is not None and "i3" in probe.catalog.index
    before = probe.reranks
    sdk.recommend("u4", k=5)
    assert probe.reranks - before == 1
