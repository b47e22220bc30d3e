"""Candidate retrieval by default: the [pipeline] pool settings and the built-in pools."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import numpy as np
import pytest

from recsdk import Plugin, hookimpl
from recsdk.config import load_settings
from recsdk.errors import ConfigurationError
from recsdk.retrieval import PoolSettings, top_positions
from recsdk.types import CandidateSet, Event, RecommendationRequest, UserHistory

N_ITEMS = 48
BLEND = {"popularity": {"weight": 0.1}, "category_popularity": {"weight": 0.3},
         "trending": {"weight": 0.1}, "cooccurrence": {"weight": 0.1},
         "als": {"weight": 1.0, "factors": 8, "iterations": 5}}


def rows() -> dict[str, list[dict[str, Any]]]:
    """Every item seen in training (so a pool can cover the catalogue); three
    categories; users buy in sessions of three items of one category."""
    cats = [{"id": "all", "name": "All"}] + [
        {"id": f"c{c}", "parent_id": "all"} for c in range(3)]
    items = [{"id": f"i{i}", "title": f"Item {i}", "category_id": f"c{i % 3}",
              "price": 10.0, "stock": 5} for i in range(N_ITEMS)]
    start = datetime(2024, 1, 1, tzinfo=UTC)
    rng = np.random.default_rng(7)
    events = []
    for u in range(60):
        cat = u % 3
        picks = rng.choice(np.arange(cat, N_ITEMS, 3), size=6, replace=False)
        for j, i in enumerate(picks):
            events.append({"user_id": f"u{u}", "item_id": f"i{i}",
                           "type": "add_to_cart" if j % 2 else "view",
                           "timestamp": (start + timedelta(hours=u, minutes=j)).isoformat()})
    for i in range(N_ITEMS):  # every item once more, so that all are trained
        events.append({"user_id": "seed", "item_id": f"i{i}", "type": "view",
                       "timestamp": (start + timedelta(days=5, minutes=i)).isoformat()})
    return {"categories": cats, "items": items, "events": events}


def filled(make_sdk: Any, pipeline: dict[str, Any], plugins: dict[str, Any] | None = None,
           **config: Any) -> Any:
    plugins = plugins or BLEND
    extra = {"counter": CandidateCounter} if "counter" in plugins else None
    sdk = make_sdk({"pipeline": {"fallback": "popularity", **pipeline},
                    "plugins": plugins, "cache": {"result_ttl_s": 0}, **config},
                   plugins=extra)
    data = rows()
    sdk.upsert_categories(data["categories"])
    sdk.upsert_items(data["items"])
    sdk.track_many(data["events"])
    sdk.fit()
    return sdk


class CandidateCounter(Plugin):
    """A scorer that records how many candidates each request gave it."""

    seen: ClassVar[list[int]] = []

    @hookimpl
    def recsdk_score(self, candidates: CandidateSet) -> np.ndarray:
        type(self).seen.append(len(candidates))
        return np.zeros(len(candidates))


# ---- settings -------------------------------------------------------------------------


@pytest.mark.parametrize("pipeline, message", [
    ({"retrieval": "sometimes"}, "retrieval"),
    ({"pool_size": 0}, "pool_size"),
    ({"retrieval_min_items": 0}, "retrieval_min_items"),
])
def test_bad_retrieval_settings_are_refused_by_name(pipeline, message):
    with pytest.raises(ConfigurationError, match=message):
        load_settings({"pipeline": pipeline}, environ={})


def test_pool_settings_refuse_bad_values_and_say_when_they_are_on():
    with pytest.raises(ValueError, match=r"pipeline\.retrieval must be one of"):
        PoolSettings("always")
    with pytest.raises(ValueError, match="pool_size must be at least 1"):
        PoolSettings(size=0)
    auto = PoolSettings.from_pipeline({"retrieval": "auto", "retrieval_min_items": 100})
    assert not auto.active(99) and auto.active(100)
    assert PoolSettings("on").active(1) and not PoolSettings("off").active(10**9)
    assert PoolSettings(size=5).take(1000) == 5 and PoolSettings(size=5).take(3) == 3


def test_defaults_are_auto_from_100000_items_with_pools_of_200():
    pipeline = load_settings({}, environ={}).pipeline
    assert (pipeline["retrieval"], pipeline["retrieval_min_items"], pipeline["pool_size"]) \
        == ("auto", 100_000, 200)


def test_top_positions_best_first_ties_by_position_nan_left_out():
    scores = np.array([1.0, np.nan, 3.0, 3.0, 0.5, 2.0])
    assert top_positions(scores, 3).tolist() == [2, 3, 5]
    assert top_positions(scores, 10).tolist() == [2, 3, 5, 0, 4]
    assert top_positions(scores, 0).tolist() == []


# ---- the pipeline ---------------------------------------------------------------------


def test_scorers_see_a_bounded_candidate_set_when_pools_are_on(make_sdk):
    CandidateCounter.seen = []
    plugins = {**BLEND, "counter": {"weight": 0.01}}
    sdk = filled(make_sdk, {"retrieval": "on", "pool_size": 4}, plugins)
    for u in ("u1", "u2", "u3", "nobody"):
        assert len(sdk.recommend(u, k=3).items) == 3
    # popularity, trending, category_popularity and cooccurrence answer at most 4 each
    # (als has no index at 48 items: it does not retrieve)
    assert len(CandidateCounter.seen) == 4 and max(CandidateCounter.seen) <= 16 < N_ITEMS
    # a user no model knows: the popularity and trending pools only
    assert CandidateCounter.seen[-1] <= 8


def test_auto_scores_every_item_below_retrieval_min_items(make_sdk):
    CandidateCounter.seen = []
    plugins = {**BLEND, "counter": {"weight": 0.01}}
    sdk = filled(make_sdk, {"pool_size": 4}, plugins)  # auto, 100,000 items
    sdk.recommend("u1", k=3)
    assert CandidateCounter.seen == [N_ITEMS]


def test_pools_covering_the_catalogue_serve_what_full_scoring_serves(make_sdk, tmp_path):
    off = filled(make_sdk, {"retrieval": "off"}, database_url=f"sqlite:///{tmp_path}/a.db")
    on = filled(make_sdk, {"retrieval": "on", "pool_size": N_ITEMS},
                database_url=f"sqlite:///{tmp_path}/b.db")
    for u in ("u0", "u1", "u2", "u7", "u30", "nobody"):
        a, b = off.recommend(u, k=10), on.recommend(u, k=10)
        assert a.item_ids == b.item_ids, u
        assert np.allclose([i.score for i in a.items], [i.score for i in b.items]), u


def test_exclusions_hold_with_pools(make_sdk):
    sdk = filled(make_sdk, {"retrieval": "on", "pool_size": 6})
    first = sdk.recommend("u1", k=5).item_ids
    again = sdk.recommend("u1", k=5, exclude=first[:2], log_request=False).item_ids
    assert not set(first[:2]) & set(again) and len(again) == 5


# ---- the pools ------------------------------------------------------------------------


def _plugin(sdk: Any, name: str) -> Any:
    return sdk.plugins.get(name)


def _request(sdk: Any, user: str) -> RecommendationRequest:
    history = sdk.history(user)
    return RecommendationRequest(user_id=user, k=10, history=history, catalog=sdk.catalog)


def test_category_pools_hold_the_users_categories_most_popular_first(make_sdk):
    sdk = filled(make_sdk, {"retrieval": "on", "pool_size": 6})
    plugin = _plugin(sdk, "category_popularity")
    got = plugin.recsdk_retrieve_candidates(request=_request(sdk, "u4"), n=100)
    assert len(got.ids) == 6
    assert {sdk.catalog.category_of(i) for i in got.ids} == {"c1"}  # u4 only saw c1
    popularity = {i: plugin.popularity_[sdk.plugins.get("popularity").item_ids_.tolist()
                                         .index(i)] for i in got.ids}
    assert [popularity[i] for i in got.ids] == sorted(popularity.values(), reverse=True)


def test_cooccurrence_pool_is_the_baskets_neighbours_and_scores_match_dense(make_sdk):
    sdk = filled(make_sdk, {"retrieval": "on", "pool_size": 5})
    plugin = _plugin(sdk, "cooccurrence")
    request = _request(sdk, "u5")
    got = plugin.recsdk_retrieve_candidates(request=request, n=100)
    assert 0 < len(got.ids) <= 5 and got.scores == sorted(got.scores, reverse=True)
    codes = plugin.request_basket(request)
    dense = plugin.basket_scores(np.asarray(codes))
    ids = np.array([f"i{i}" for i in range(0, N_ITEMS, 5)], dtype=object)
    few = CandidateSet(ids, np.array([plugin.item_index_[i] for i in ids], dtype=np.int64))
    assert len(few) < 0.25 * N_ITEMS  # the sparse path
    sparse = plugin.candidate_basket_scores(np.asarray(codes), few)
    assert np.allclose(sparse, dense[few.codes], rtol=1e-6)


def test_trending_pool_stays_the_true_top_as_events_arrive(make_sdk):
    sdk = filled(make_sdk, {"retrieval": "on", "pool_size": 3})
    plugin = _plugin(sdk, "trending")
    request = _request(sdk, "u1")
    weights = sdk.settings.event_weights
    clock = plugin.reference_time_
    # the least popular items get many events: they must enter the pool
    tail = [plugin.slot_ids_[c] for c in np.argsort(plugin.scores_)[:4]]
    for n, item in enumerate(tail * 5):
        plugin.recsdk_collect_event(events=[Event(
            user_id="x", item_id=item, type="purchase",
            timestamp=datetime.fromtimestamp(clock + n, UTC))], weights=weights)
    plugin.recsdk_collect_event(events=[Event(
        user_id="x", item_id="brand-new", type="purchase",
        timestamp=datetime.fromtimestamp(clock + 30, UTC))], weights=weights)
    got = plugin.recsdk_retrieve_candidates(request=request, n=10)
    truth = top_positions(plugin.scores_, 3)
    assert got.ids == [plugin.slot_ids_[c] for c in truth]
    assert set(got.ids) <= set(tail) | {"brand-new"}


def test_pool_retrievers_abstain_when_pools_are_off(make_sdk):
    sdk = filled(make_sdk, {"retrieval": "off"})
    request = _request(sdk, "u1")
    for name in ("popularity", "trending", "category_popularity", "cooccurrence"):
        assert _plugin(sdk, name).recsdk_retrieve_candidates(request=request, n=10) is None


def test_a_user_without_history_gets_no_category_or_basket_pool(make_sdk):
    sdk = filled(make_sdk, {"retrieval": "on"})
    request = RecommendationRequest(user_id="nobody", k=5, history=UserHistory(),
                                    catalog=sdk.catalog)
    assert _plugin(sdk, "category_popularity").recsdk_retrieve_candidates(
        request=request, n=10) is None
    assert _plugin(sdk, "cooccurrence").recsdk_retrieve_candidates(
        request=request, n=10) is None
    assert len(_plugin(sdk, "popularity").recsdk_retrieve_candidates(
        request=request, n=10).ids) == 10


# ---- cached lists -----------------------------------------------------------------------


@pytest.mark.redis
def test_cached_top_n_is_dropped_on_the_users_new_events_and_on_a_new_run(make_sdk,
                                                                           redis_url):
    sdk = filled(make_sdk, {"retrieval": "on", "pool_size": 8}, redis_url=redis_url,
                 cache={"result_ttl_s": 300})

    def cached() -> float:
        return sdk.telemetry.value("recsdk_recommendations", placement="default",
                                   variant="default", outcome="cached")

    first = sdk.recommend("u1", k=4)
    assert sdk.recommend("u1", k=4).item_ids == first.item_ids and cached() == 1
    sdk.track({"user_id": "u1", "item_id": first.item_ids[0], "type": "purchase"})
    after_event = sdk.recommend("u1", k=4)
    assert cached() == 1 and first.item_ids[0] not in after_event.item_ids
    sdk.recommend("u1", k=4)
    assert cached() == 2
    sdk.fit()  # a new run: lists cached for the old one are not served
    sdk.recommend("u1", k=4)
    assert cached() == 2


# ---- the catalogue check ----------------------------------------------------------------


def threads_checking_the_catalogue(sdk: Any) -> list[str]:
    """The names of the threads that ask the store for the catalogue version, from now."""
    names: list[str] = []
    version = sdk.store.catalog_version

    def spy() -> str:
        names.append(threading.current_thread().name)
        return version()

    sdk.store.catalog_version = spy
    return names


def test_catalogue_checks_run_off_the_request_thread_and_still_see_changes(make_sdk):
    sdk = filled(make_sdk, {}, cache={"result_ttl_s": 0, "catalog_refresh_s": 0.01})
    checked_on = threads_checking_the_catalogue(sdk)
    first = sdk.recommend("u1", k=3).item_ids
    # another process takes the first item out of stock
    make_sdk({}).upsert_items([{"id": first[0], "title": "gone", "stock": 0}])
    time.sleep(0.05)
    sdk.recommend("u1", k=3)  # due: the check starts in the background
    sdk._catalog_refresher.join(timeout=30)
    assert checked_on and set(checked_on) == {"recsdk-catalog-refresh"}
    assert first[0] not in sdk.recommend("u1", k=3).item_ids


def test_catalogue_refresh_zero_checks_inline_before_every_request(make_sdk):
    sdk = filled(make_sdk, {}, cache={"result_ttl_s": 0, "catalog_refresh_s": 0})
    checked_on = threads_checking_the_catalogue(sdk)
    sdk.recommend("u1", k=3)
    sdk.recommend("u2", k=3)
    assert checked_on == [threading.current_thread().name] * 2
