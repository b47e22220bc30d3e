"""The interest plugin through RecSDK: fit with demographics, live events, requests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from recsdk import Plugin, RecSDK, hookimpl
from recsdk.errors import ConfigurationError
from recsdk.types import CandidateSet, RecommendationRequest

from .conftest import sdk_rows


class FeatureProbe(Plugin):
    """Records the features each request carried when scoring started."""

    seen: list[dict[str, Any]]

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.seen = []

    @hookimpl
    def recsdk_score(self, request: RecommendationRequest, candidates: CandidateSet) -> None:
        self.seen.append(dict(request.features))


PLUGINS = {"interest": {"half_life_days": 7.0}, "probe": {}, "popularity": {}}


@pytest.fixture
def build_sdk(tmp_path) -> Iterator[Callable[[], RecSDK]]:
    """Build SDKs on one SQLite file (a second one is a restart)."""
    made: list[RecSDK] = []

    def build() -> RecSDK:
        made.append(RecSDK({"database_url": f"sqlite:///{tmp_path / 'shop.db'}",
                            "plugins": PLUGINS}, environ={}, plugins={"probe": FeatureProbe}))
        return made[-1]

    yield build
    for s in made:
        s.close()


@pytest.fixture
def sdk(build_sdk) -> RecSDK:
    """The hand-made shop, stored and fitted."""
    first = build_sdk()
    rows = sdk_rows()
    first.upsert_categories(rows["categories"])
    first.upsert_items(rows["items"])
    first.upsert_users(rows["users"])
    first.track_many(rows["events"])
    first.fit()
    return first


def test_requests_carry_the_profile(sdk):
    sdk.recommend("runner", k=3)
    features = sdk.plugins.get("probe").seen[-1]["interest"]
    assert features["user_id"] == "runner"
    assert features["demographics"]["age_band"] == "25-34"  # from the stored users
    assert "category:fashion" in features["tags"]
    assert features["interaction"]["by_type"]["view"] == 6
    assert features["purchase"]["spend"] == pytest.approx(165.0)


def test_live_events_refresh_profiles(sdk):
    plugin = sdk.plugins.get("interest")
    before = plugin.profile("runner")
    sdk.track_many([{"user_id": "runner", "item_id": "p1", "type": "purchase", "value": 550.0},
                    {"user_id": "brand-new", "item_id": "a2", "type": "view"}])
    after = plugin.profile("runner")
    assert after.interaction.by_type["purchase"] == before.interaction.by_type["purchase"] + 1
    assert after.purchase.spend == pytest.approx(before.purchase.spend + 550.0)
    assert after.category_affinity["electronics/phones"] > 0
    assert "electronics/phones" not in before.category_affinity
    newcomer = plugin.profile("brand-new")
    assert newcomer.top_categories(1) == ["electronics/audio"]


def test_anonymous_sessions_get_a_profile_from_their_history(sdk):
    sdk.track_many([{"user_id": "anon-7", "session_id": "sess-1", "item_id": "h1",
                     "type": "view"}])
    sdk.plugins.get("interest").model.users_.pop("anon-7")  # as if never seen by the model
    sdk.recommend(session_id="sess-1", k=3)
    features = sdk.plugins.get("probe").seen[-1]["interest"]
    assert features["user_id"] is None
    assert max(features["category_affinity"], key=features["category_affinity"].get) in {
        "fashion", "fashion/hats"}


def test_events_on_items_added_after_fit_count_once_the_catalogue_has_them(sdk):
    plugin = sdk.plugins.get("interest")
    sdk.upsert_categories([{"id": "fashion/socks", "parent_id": "fashion"}])
    sdk.upsert_items([{"id": "k1", "title": "Wool socks", "category_id": "fashion/socks"}])
    sdk.track({"user_id": "techie", "item_id": "k1", "type": "purchase"})
    sdk.recommend("techie", k=3)  # a request brings the new catalogue snapshot
    profile = plugin.profile("techie")
    assert profile.category_affinity.get("fashion/socks", 0) > 0
    assert profile.purchase.categories.get("fashion/socks") == 1
    assert plugin.model.pending_ == []


def test_profiles_survive_a_restart(sdk, build_sdk):
    expected = sdk.plugins.get("interest").profile("techie").to_dict()
    restarted = build_sdk()
    assert restarted.plugins.get("interest").profile("techie").to_dict() == expected


def test_unknown_users_get_no_features(sdk):
    sdk.recommend("stranger", k=3)
    assert "interest" not in sdk.plugins.get("probe").seen[-1]


def test_bad_parameters_are_named(tmp_path):
    with pytest.raises(ConfigurationError, match="half_life_days"):
        RecSDK({"database_url": f"sqlite:///{tmp_path / 'x.db'}",
                "plugins": {"interest": {"half_life_days": -1}, "popularity": {}}}, environ={})
    with pytest.raises(ConfigurationError, match="tag_share"):
        RecSDK({"database_url": f"sqlite:///{tmp_path / 'x.db'}",
                "plugins": {"interest": {"tag_share": 0}, "popularity": {}}}, environ={})
