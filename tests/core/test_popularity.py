"""The popularity plugins' batch scoring agrees with their per-request scoring."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsdk.dataset import InteractionDataset
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


def test_category_scores_follow_the_path_for_new_and_uncategorised_items():
    """``category_popularity`` scores an item by the user's share of history on each node
    of its category path: also items added to the catalogue after training (no trained
    code) and items without a category (no path: only the popularity tie-break)."""
    import pandas as pd
    from recsdk_plugins.popularity import CategoryPopularity

    from recsdk.catalog import Catalog
    from recsdk.dataset import InteractionDataset
    from recsdk.types import CandidateSet

    categories = pd.DataFrame({"id": ["all", "shoes", "boots", "hats"],
                               "name": ["All", "Shoes", "Boots", "Hats"],
                               "parent_id": [None, "all", "shoes", "all"]})
    items = pd.DataFrame({"id": ["b1", "b2", "h1", "s1", "x1"],
                          "category_id": ["boots", "boots", "hats", "shoes", None]})
    catalog = Catalog.from_frames(items, categories)
    events = pd.DataFrame({"user_id": ["u1", "u1", "u2", "u2", "u3"],
                           "item_id": ["b1", "h1", "b1", "b2", "x1"]})
    plugin = CategoryPopularity.from_config({}, "category_popularity")
    plugin.recsdk_fit(dataset=InteractionDataset.from_frame(events, catalog=catalog))
    # later: a new boot and a new uncategorised item join the catalogue
    grown = Catalog.from_frames(pd.concat([items, pd.DataFrame(
        {"id": ["b3", "x2"], "category_id": ["boots", None]})]), categories)
    ids = np.array(["b1", "h1", "s1", "x1", "b3", "x2"], dtype=object)
    codes = np.array([0, 2, -1, 3, -1, -1])  # trained codes (s1 never touched)
    codes[:4] = InteractionDataset.from_frame(events, catalog=catalog).item_codes(ids[:4])
    history = ["b1", "b2", "h1", "x1"]  # boots twice, hats once, one uncategorised
    request = RecommendationRequest(user_id="u9", k=3, catalog=grown,
                                    history=UserHistory(history, ["view"] * 4))
    scores = plugin.recsdk_score(request=request, candidates=CandidateSet(ids, codes))
    share = {"all": 3 / 4, "shoes": 2 / 4, "boots": 2 / 4, "hats": 1 / 4}
    expected_paths = [share["all"] + share["shoes"] + share["boots"],  # b1
                      share["all"] + share["hats"],                  # h1
                      share["all"] + share["shoes"],                 # s1
                      0.0,                                           # x1: no category
                      share["all"] + share["shoes"] + share["boots"],  # b3: new boot
                      0.0]                                           # x2: new, none
    tie = CategoryPopularity.POPULARITY_TIE_BREAK * np.array(
        [plugin.popularity_[c] if c >= 0 else 0.0 for c in codes])
    np.testing.assert_allclose(scores, np.array(expected_paths) + tie)


def test_category_index_is_ready_for_a_refreshed_catalogue_before_its_first_request(
        make_sdk):
    """Trained, loaded and refreshed snapshots get their category index off the request
    path (at 1M items building it costs more than a request's budget)."""
    sdk = make_sdk({"plugins": {"popularity": {}, "category_popularity": {}}})
    fill(sdk)
    sdk.fit()
    plugin = sdk.plugins.get("category_popularity")
    assert plugin._index_.catalog is sdk._state.catalog  # built by fit
    sdk.upsert_items([{"id": "new-hat", "title": "New hat", "category_id": "hats",
                       "price": 12.0, "stock": 3}])
    sdk.refresh_catalog()
    snapshot = sdk._state.catalog
    assert "new-hat" in set(snapshot.ids)
    index = plugin._index_
    assert index.catalog is snapshot  # built by recsdk_catalog_refreshed, before any request
    assert index.pool_start is not None  # and its per-category pools
    result = sdk.recommend("u1", k=20)
    assert plugin._index_ is index  # the request did not rebuild it
    assert not result.degraded


@pytest.mark.parametrize("window_days", [None, 2.0])
def test_item_popularity_counts_match_a_frame_reference(window_days):
    """The array path counts what filtering the frame and dropping duplicate pairs
    counts: negative-weight events and events outside the window left out, a user's
    repeat events on an item counted once in ``users`` mode."""
    from recsdk_plugins.popularity import item_popularity

    rng = np.random.default_rng(3)
    n = 4000
    types = rng.choice(["view", "purchase", "return"], size=n, p=[0.7, 0.2, 0.1])
    frame = pd.DataFrame({"user_id": rng.integers(0, 60, n).astype(str),
                          "item_id": rng.integers(0, 40, n).astype(str),
                          "type": types,
                          "timestamp": rng.uniform(0, 10 * 86400, n)})
    dataset = InteractionDataset.from_frame(frame)
    inter = dataset.interactions
    assert (inter["weight"] < 0).any()  # returns weigh against
    if window_days is not None:
        inter = inter[inter["timestamp"] >= inter["timestamp"].max() - window_days * 86400]
    inter = inter[inter["weight"] > 0]
    n_items = dataset.n_items
    expected = {
        "events": np.bincount(inter["item"], minlength=n_items),
        "weight": np.bincount(inter["item"], weights=inter["weight"], minlength=n_items),
        "users": np.bincount(inter[["user", "item"]].drop_duplicates()["item"],
                             minlength=n_items),
    }
    for count, want in expected.items():
        np.testing.assert_allclose(item_popularity(dataset, count, window_days), want,
                                   rtol=1e-6, err_msg=count)
    assert expected["users"].sum() < expected["events"].sum()  # repeats were there
