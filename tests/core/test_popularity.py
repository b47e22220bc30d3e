"""The popularity plugins' batch scoring agrees with their per-request scoring."""

from __future__ import annotations

import numpy as np

from recsdk.types import RecommendationRequest, UserHistory
from tests.core.shop import fill


def test_batch_and_single_scores_agree(make_sdk):
    sdk = make_sdk({"plugins": {"popularity": {}, "category_popularity": {},
                                "trending": {}}})
    fill(sdk)
    sdk.fit()
    state = sdk._state
    users = ["u1", "u2", "u7", "stranger"]
    for name in ("popularity", "category_popularity", "trending"):
        (answer,) = sdk.plugins.call_each("recsdk_score_users", only=[name], user_ids=users,
                                          candidates=state.all_candidates)
        batch = answer.value
        assert batch.shape == (len(users), len(state.all_candidates))
        for row, user in zip(batch, users, strict=True):
            items = list(state.dataset.item_ids[state.dataset.user_items(user)])
            request = RecommendationRequest(
                user_id=user, k=5, catalog=state.catalog,
                history=UserHistory(items, ["view"] * len(items)))
            (single,) = sdk.plugins.call_each("recsdk_score", only=[name], request=request,
                                              candidates=state.all_candidates)
            single = single.value
            if single is None:  # abstains for users without history
                assert np.isnan(row).all()
            else:
                np.testing.assert_allclose(row, single)


def test_unfitted_plugins_abstain(make_sdk):
    sdk = make_sdk({"plugins": {"popularity": {}, "category_popularity": {},
                                "trending": {}}})
    fill(sdk)
    candidates = sdk._state.all_candidates
    answers = sdk.plugins.call_each("recsdk_score_users", user_ids=["u1"],
                                    candidates=candidates)
    assert {a.plugin for a in answers} == {"popularity", "category_popularity", "trending"}
    assert all(a.ok and a.value is None for a in answers)


def _trending_top(sdk, k: int = 3) -> list[str]:
    state = sdk._state
    (answer,) = sdk.plugins.call_each("recsdk_score", only=["trending"],
                                      candidates=state.all_candidates)
    scores = answer.value
    order = np.argsort(-scores, kind="stable")
    return [state.all_candidates.ids[i] for i in order[:k]]


def test_one_live_event_on_stale_data_does_not_top_trending(make_sdk):
    # the shop's events are from January 2024; the clock says today
    sdk = make_sdk({"plugins": {"popularity": {}, "trending": {}}})
    fill(sdk)
    sdk.fit()
    before = _trending_top(sdk)
    sdk.track({"user_id": "newcomer", "item_id": "i19", "type": "purchase"})
    assert _trending_top(sdk) == before  # the old hits keep their places
    trending = sdk.plugins.get("trending")
    code = trending.item_index_["i19"]
    # one purchase counts its weight once, undecayed, like a purchase at the data's end
    assert trending.scores_[code] == sdk.settings.event_weights["purchase"]


def test_trending_clock_follows_events_no_faster_than_the_wall_clock():
    from datetime import UTC, datetime, timedelta
    from types import SimpleNamespace

    import pandas as pd
    from recsdk_plugins.popularity import TrendingPopularity

    from recsdk.types import Event

    day = 86400.0
    data_end = datetime(2024, 1, 31, tzinfo=UTC)
    plugin = TrendingPopularity(half_life_hours=24)
    wall = [data_end.timestamp() + 700 * day]  # trained two years after the data end

    dataset = SimpleNamespace(  # the little of InteractionDataset that trending reads
        item_index={"old-hit": 0, "other": 1}, n_items=2,
        interactions=pd.DataFrame({
            "item": [0, 0, 0, 1], "weight": [1.0, 1.0, 1.0, 1.0],
            "timestamp": [data_end.timestamp()] * 3 + [data_end.timestamp() - day]}))
    plugin.wall_clock = lambda: wall[0]
    plugin.recsdk_fit(dataset)
    assert plugin.clock_limit() == data_end.timestamp()

    def live(item: str, when: datetime, kind: str = "view") -> None:
        plugin.recsdk_collect_event([Event(user_id="u", item_id=item, type=kind,
                                           timestamp=when)], {"view": 1.0})

    now = datetime.fromtimestamp(wall[0], UTC)
    live("new", now)  # two years after the data: counted as the data's "now"
    assert plugin.reference_time_ == data_end.timestamp()
    assert plugin.scores_[0] == 3.0 and plugin.scores_[-1] == 1.0  # no decay of the data
    wall[0] += 2 * day  # two days pass: the data clock may move two days
    live("new", now + timedelta(days=2))
    assert plugin.reference_time_ == data_end.timestamp() + 2 * day
    assert np.isclose(plugin.scores_[0], 3.0 / 4)  # two half-lives
    assert np.isclose(plugin.scores_[-1], 1.0 / 4 + 1.0)
    live("new", now + timedelta(days=30))  # dated ahead of the clock: counts as now
    assert plugin.reference_time_ == data_end.timestamp() + 2 * day
    for _ in range(3):  # a real trend overtakes the old hit
        live("new", now + timedelta(days=2))
    assert plugin.scores_[-1] > plugin.scores_[0]
