"""Predicted ratings: the first predictor answers, NaN becomes None, bad calls are refused."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from recsdk import Plugin, hookimpl
from recsdk.api import create_app
from recsdk.errors import NotTrainedError, ValidationFailed
from recsdk.types import CandidateSet, RecommendationRequest


class Stars(Plugin):
    """Rates every known item 4.5 for known users and abstains for others."""

    @hookimpl
    def recsdk_predict_ratings(self, request: RecommendationRequest,
                               candidates: CandidateSet) -> np.ndarray | None:
        if request.user_id != "u1":
            return None
        return np.where(candidates.codes >= 0, 4.5, np.nan)


class Broken(Plugin):
    @hookimpl
    def recsdk_predict_ratings(self) -> np.ndarray:
        raise RuntimeError("no stars today")


def trained(make_sdk: Any, plugins: dict[str, type]) -> Any:
    # a generous budget: a loaded CI machine must not turn these checks into timeouts
    config = {"plugins": {"popularity": {}, **{n: {} for n in plugins}},
              "pipeline": {"timeout_ms": 10_000}}
    sdk = make_sdk(config, plugins=plugins)
    sdk.track_many([{"user_id": "u1", "item_id": "a", "type": "view"},
                    {"user_id": "u2", "item_id": "b", "type": "purchase"}])
    sdk.fit()
    return sdk


def test_the_predictor_answers_with_none_for_items_it_cannot_rate(make_sdk: Any) -> None:
    sdk = trained(make_sdk, {"stars": Stars})
    got = sdk.predict_ratings("u1", ["a", "b", "brand-new"])
    assert got.plugin == "stars" and got.model_run is not None
    assert got.ratings == {"a": 4.5, "b": 4.5, "brand-new": None}
    nobody = sdk.predict_ratings("stranger", ["a"])
    assert nobody.plugin is None and nobody.ratings == {"a": None}


def test_a_failing_predictor_is_reported_and_the_next_one_answers(make_sdk: Any) -> None:
    sdk = trained(make_sdk, {"stars": Stars, "broken": Broken})
    got = sdk.predict_ratings("u1", ["a"])
    assert got.plugin == "stars" and got.ratings == {"a": 4.5}
    assert any("broken.predict_ratings" in f and "no stars today" in f for f in got.failures)


def test_bad_calls_are_refused_naming_what_is_wrong(make_sdk: Any) -> None:
    sdk = make_sdk({"plugins": {"popularity": {}, "stars": {}}}, plugins={"stars": Stars})
    with pytest.raises(NotTrainedError):
        sdk.predict_ratings("u1", ["a"])
    sdk = trained(make_sdk, {"stars": Stars})
    with pytest.raises(ValidationFailed, match="item_ids"):
        sdk.predict_ratings("u1", [])
    with pytest.raises(ValidationFailed, match="item_ids"):
        sdk.predict_ratings("u1", [f"i{n}" for n in range(1001)])


def test_rest_ratings(make_sdk: Any) -> None:
    client = create_app(trained(make_sdk, {"stars": Stars})).test_client()
    answer = client.get("/api/v1/ratings?user_id=u1&item_id=a&item_id=zzz")
    assert answer.status_code == 200
    body = answer.get_json()
    assert body["ratings"] == {"a": 4.5, "zzz": None} and body["plugin"] == "stars"
    assert client.get("/api/v1/ratings?item_id=a").status_code == 400
    missing = client.get("/api/v1/ratings?user_id=u1")
    assert missing.status_code == 422 and "item_id" in missing.get_json()["errors"]["query"]
    many = "&".join(f"item_id=i{n}" for n in range(1001))
    assert client.get(f"/api/v1/ratings?user_id=u1&{many}").status_code == 422
