"""The factorisation plugins inside a real SDK: train, store, load in a new process, serve."""

from __future__ import annotations

import numpy as np
import pytest

from recsdk import RecSDK
from recsdk.types import CandidateSet, RecommendationRequest
from tests.core.shop import fill


@pytest.mark.parametrize("index", ["hnsw", "exact"])
def test_trained_run_loads_in_a_new_sdk_and_retrieves_through_the_index(tmp_path, index):
    config = {"database_url": f"sqlite:///{tmp_path / 'shop.db'}",
              "pipeline": {"timeout_ms": 10_000},  # no timeouts on a loaded CI machine
              "models": {"artifact_dir": str(tmp_path / "artifacts"), "model_refresh_s": 0},
              "plugins": {"als": {"factors": 4, "iterations": 5, "num_threads": 1,
                                  "regularization": 1.0, "alpha": 5.0, "index": index},
                          "popularity": {}}}
    first = RecSDK(config, environ={})
    try:
        fill(first)
        run = first.fit().run_id
        before = first.recommend("u3", k=3).item_ids
    finally:
        first.close()
    second = RecSDK(config, environ={})
    try:
        assert second.model_run == run
        als = second.plugins.get("als")
        assert (als.retriever_.index is not None) is (index == "hnsw")
        assert second.recommend("u3", k=3).item_ids == before
        # the retriever answers from the loaded state: the model's own top 5
        request = RecommendationRequest("u3", k=3)
        got = als.recsdk_retrieve_candidates(request=request, n=5)
        items = als.retriever_.item_ids
        scores = als.recsdk_score(request=request, candidates=CandidateSet(
            items, np.arange(len(items))))
        assert got.ids == list(items[np.argsort(-scores, kind="stable")[:5]])
    finally:
        second.close()
