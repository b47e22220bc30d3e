"""Experiments served end to end: each unit's variant pipeline answers, sticky, logged
with its experiment; QA overrides are flagged; configuration errors stop startup."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from recsdk import RecSDK
from recsdk.api import create_app
from recsdk.errors import ConfigurationError
from recsdk.storage import models

EXPERIMENT = {
    "placements": ["home"],
    "variants": {
        "control": {"share": 0.5},
        "fresh": {"share": 0.5, "fallback": "trending",
                  "plugins": {"trending": {"weight": 1.0, "half_life_hours": 24}}},
    },
}


def settings(tmp_path: Path, **experiment: Any) -> dict[str, Any]:
    return {"database_url": f"sqlite:///{tmp_path / 'shop.db'}",
            "pipeline": {"timeout_ms": 10_000},  # no timeouts on a loaded CI machine
            "plugins": {"popularity": {}},
            "experiments": {"home_test": {**EXPERIMENT, **experiment}}}


def events() -> list[dict[str, Any]]:
    """i0 is the most popular of all time; i9 was viewed most in the last hours."""
    rows = [{"user_id": f"old{n}", "item_id": "i0", "type": "purchase",
             "timestamp": "2026-01-01T00:00:00Z"} for n in range(10)]
    rows += [{"user_id": f"new{n}", "item_id": "i9", "type": "view",
              "timestamp": "2026-11-28T00:00:00Z"} for n in range(3)]
    return rows


@pytest.fixture
def sdk(tmp_path: Path) -> Any:
    with RecSDK(settings(tmp_path), environ={}) as sdk:
        sdk.upsert_items([{"id": f"i{n}", "stock": 5} for n in range(10)])
        sdk.track_many(events())
        sdk.fit()
        yield sdk


def test_each_unit_is_served_by_its_variants_pipeline_and_stays_there(sdk: Any) -> None:
    seen: dict[str, str] = {}
    for n in range(40):
        result = sdk.recommend(f"visitor{n}", placement="home", k=1)
        assert result.experiment == "home_test"
        assert result.variant in {"control", "fresh"}
        # control: the top-level pipeline (popularity); fresh: trending alone
        assert result.item_ids == (["i0"] if result.variant == "control" else ["i9"])
        assert result.plugins == (["popularity"] if result.variant == "control"
                                  else ["trending"])
        seen[f"visitor{n}"] = result.variant
    assert set(seen.values()) == {"control", "fresh"}
    again = {u: sdk.recommend(u, placement="home", k=1).variant for u in seen}
    assert again == seen  # sticky
    outside = sdk.recommend("visitor1", placement="default", k=1)
    assert outside.experiment is None and outside.variant == "default"
    assert outside.item_ids == ["i0"]  # a variant-only plugin never leaks out


def test_served_lists_are_logged_with_experiment_and_forced_flag(sdk: Any) -> None:
    client = create_app(sdk).test_client()
    body = client.get("/api/v1/recommendations?user_id=qa&placement=home"
                      "&variant=home_test:fresh").get_json()
    assert (body["experiment"], body["variant"]) == ("home_test", "fresh")
    header = client.get("/api/v1/recommendations?user_id=qa2&placement=home",
                        headers={"X-Recsdk-Variant": "control"}).get_json()
    assert header["variant"] == "control"
    plain = client.get("/api/v1/recommendations?user_id=shopper&placement=home").get_json()
    sdk.request_log.flush()
    table = models.RecommendationRequest.__table__
    with sdk.store.engine.connect() as conn:
        rows = {r.id: r for r in conn.execute(select(table)).all()}
    assert rows[body["request_id"]].forced and rows[header["request_id"]].forced
    assert not rows[plain["request_id"]].forced
    assert rows[plain["request_id"]].experiment == "home_test"
    bad = client.get("/api/v1/recommendations?user_id=qa&placement=home&variant=nope")
    assert bad.status_code == 400
    assert "nope" in bad.get_json()["message"] and "home_test:fresh" in bad.get_json()["message"]
    elsewhere = client.get("/api/v1/recommendations?user_id=qa&variant=fresh")
    assert elsewhere.status_code == 400  # no experiment on the default placement


def test_a_variant_plugin_trains_and_loads_with_the_run(tmp_path: Path) -> None:
    config = {**settings(tmp_path), "models": {"model_refresh_s": 0}}
    with RecSDK(config, environ={}) as first:
        first.upsert_items([{"id": f"i{n}", "stock": 5} for n in range(10)])
        first.track_many(events())
        first.fit()
    with RecSDK(config, environ={}) as second:  # loads the stored run
        forced = second.recommend("u", placement="home", k=1, force_variant="fresh")
        assert forced.item_ids == ["i9"] and not forced.degraded


def test_an_unknown_variant_plugin_stops_startup_naming_the_experiment(tmp_path: Path) -> None:
    broken = {"control": {"share": 0.5},
              "fresh": {"share": 0.5, "fallback": "nope", "plugins": {"nope": {}}}}
    with pytest.raises(ConfigurationError, match=r"experiments\.home_test\.variants\.fresh"
                       r"\.plugins\.nope: unknown plugin 'nope'"):
        RecSDK(settings(tmp_path, variants=broken), environ={})


def test_the_similar_items_placement_cannot_hold_an_experiment(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"experiments\.home_test: placement "
                       r"'similar' serves similar_items"):
        RecSDK(settings(tmp_path, placements=["home", "similar"]), environ={})


def test_a_running_experiment_refuses_a_change_that_moves_units(tmp_path: Path) -> None:
    with RecSDK(settings(tmp_path), environ={}) as first:
        stored = first.store.experiment_records()["home_test"]
        assert stored["variants"] == [["control", 0.5], ["fresh", 0.5]]
    resplit = {"control": {"share": 0.7}, "fresh": {**EXPERIMENT["variants"]["fresh"],
                                                    "share": 0.3}}
    with pytest.raises(ConfigurationError, match=r"experiments\.home_test: variants changed "
                       r"while the experiment runs"):
        RecSDK(settings(tmp_path, variants=resplit), environ={})
    later = {"at": "2099-01-01T00:00:00Z", "shares": {"control": 0.5, "fresh": 0.5}}
    with RecSDK(settings(tmp_path, stop="2099-06-01T00:00:00Z", ramp=[later]),
                environ={}) as moved:  # a later stop and a future ramp step are allowed
        assert moved.store.experiment_records()["home_test"]["stop"].startswith("2099-06-01")
