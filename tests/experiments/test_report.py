"""Experiment reports: counts exactly as posted, last-touch attribution within the window,
forced lists left out, statistics equal to direct calls, SRM, the empty case, the CLI."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
import numpy as np
import pytest
from click.testing import CliRunner
from sqlalchemy import update

from recsdk import RecSDK
from recsdk.cli import experiments as experiments_cli
from recsdk.experiments.config import ExperimentSettings, RampStep, VariantSettings
from recsdk.experiments.report import _expected_shares, experiment_report
from recsdk.experiments.stats import (
    adjust_comparisons,
    compare_means,
    compare_rates,
    sample_ratio_mismatch,
)
from recsdk.storage import models

#: when every list of the test was served (the requests are moved back to it)
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(days=20)
NOW = T0 + timedelta(days=15)
USERS = 80
CONFIG = """
database_url = "sqlite:///{db}"
[pipeline]
timeout_ms = 10000
[plugins.popularity]
[experiments.home_test]
placements = ["home"]
holdout = 0.2
[experiments.home_test.variants.control]
share = 0.5
[experiments.home_test.variants.fresh]
share = 0.5
[experiments.idle_test]
placements = ["cart"]
[experiments.idle_test.variants.a]
share = 0.5
[experiments.idle_test.variants.b]
share = 0.5
[placements.cart]
"""


@pytest.fixture
def shop(tmp_path: Path) -> Any:
    """80 users served once at T0 (plus one forced list); in fresh every user clicks and
    three in four buy for 30, in control (and the holdout) one in three clicks and one in
    six buys for 20. Two lists are marked degraded."""
    config = tmp_path / "shop.toml"
    config.write_text(CONFIG.format(db=(tmp_path / "shop.db").as_posix()))
    with RecSDK(str(config), environ={}) as sdk:
        sdk.upsert_items([{"id": f"i{n}", "stock": 5} for n in range(10)])
        sdk.track_many([{"user_id": f"old{n}", "item_id": "i0", "type": "purchase",
                         "timestamp": "2026-01-01T00:00:00Z"} for n in range(5)])
        sdk.fit()
        served = {f"u{n}": sdk.recommend(f"u{n}", placement="home", k=3) for n in range(USERS)}
        forced = sdk.recommend("u0", placement="home", k=3, force_variant="fresh")
        sdk.request_log.flush()
        table = models.RecommendationRequest.__table__
        with sdk.store.engine.begin() as conn:
            conn.execute(update(table).values(created_at=T0.replace(tzinfo=None)))
            conn.execute(update(table).where(table.c.id.in_(
                [served["u1"].request_id, served["u2"].request_id])).values(degraded=True))
        rows = []
        for n, (_user, result) in enumerate(sorted(served.items(),
                                                    key=lambda p: int(p[0][1:]))):
            fresh = result.variant == "fresh"
            at = (T0 + timedelta(hours=1)).isoformat()
            base = {"request_id": result.request_id, "item_id": result.item_ids[0],
                    "timestamp": at}
            if fresh or n % 3 == 0:
                rows.append({**base, "type": "click"})
            if (fresh and n % 4 != 3) or (not fresh and n % 6 == 0):
                rows += [{**base, "type": "add_to_cart"},
                         {**base, "type": "purchase", "value": 30.0 if fresh else 20.0}]
        rows.append({"request_id": forced.request_id, "item_id": forced.item_ids[0],
                     "type": "purchase", "value": 999.0,
                     "timestamp": (T0 + timedelta(hours=1)).isoformat()})
        sdk.log_feedback(rows)
        yield sdk, served, rows, config


def arm_of(served: dict[str, Any], variant: str) -> list[str]:
    return [u for u, r in served.items() if r.variant == variant]


def test_counts_match_what_was_posted_and_forced_lists_are_left_out(shop: Any) -> None:
    sdk, served, rows, _ = shop
    report = experiment_report(sdk.store, sdk.settings.experiments[0], now=NOW)
    assert report.message is None
    by_request = {r.request_id: r.variant for r in served.values()}
    assert [a.name for a in report.arms] == ["control", "fresh", "holdout"]
    for variant in ("control", "fresh", "holdout"):
        arm = report.arm(variant)
        mine = [r for r in rows if by_request.get(r["request_id"]) == variant]
        assert arm.exposures == arm.units == len(arm_of(served, variant))
        assert arm.clicks == arm.exposures_clicked == sum(r["type"] == "click" for r in mine)
        assert arm.add_to_carts == sum(r["type"] == "add_to_cart" for r in mine)
        assert arm.purchases == arm.feedback_purchases == sum(r["type"] == "purchase"
                                                              for r in mine)
        assert arm.units_converted == arm.purchases  # one purchase per buying user
        assert arm.revenue == pytest.approx(sum(r.get("value") or 0 for r in mine))
        degraded = sum(served[u].variant == variant for u in ("u1", "u2"))
        assert arm.degraded == degraded
        assert arm.metrics()["degraded_share"] == degraded / arm.exposures
        assert arm.metrics()["average_order_value"] == (30.0 if variant == "fresh" else 20.0)
    assert sum(a.exposures for a in report.arms) == USERS  # the forced list is not one


def test_statistics_are_the_direct_calls_on_the_same_numbers(shop: Any) -> None:
    sdk, _, _, _ = shop
    report = experiment_report(sdk.store, sdk.settings.experiments[0], now=NOW)
    c, f = report.arm("control"), report.arm("fresh")
    direct = [
        compare_rates(c.units_clicked, c.units, f.units_clicked, f.units, metric="click_rate",
                      control="control", treatment="fresh"),
        compare_rates(c.units_added_to_cart, c.units, f.units_added_to_cart, f.units,
                      metric="add_to_cart_rate", control="control", treatment="fresh"),
        compare_rates(c.units_converted, c.units, f.units_converted, f.units,
                      metric="conversion_rate", control="control", treatment="fresh"),
        compare_means(np.array(c.unit_revenue), np.array(f.unit_revenue),
                      metric="revenue_per_unit", control="control", treatment="fresh"),
    ]
    assert list(report.comparisons) == adjust_comparisons(direct)
    assert len(c.unit_revenue) == c.units and sum(c.unit_revenue) == pytest.approx(c.revenue)
    assert report.winner == "fresh"  # planted: ~75% against ~17% conversion
    h = report.arm("holdout")
    assert report.expected_shares == pytest.approx({"control": 0.4, "fresh": 0.4,
                                                     "holdout": 0.2})
    srm = sample_ratio_mismatch([c.units, f.units, h.units], [0.4, 0.4, 0.2])
    assert report.srm_p_value == pytest.approx(srm.p_value)
    assert report.srm_mismatch is False


def test_expected_shares_follow_the_ramp_at_each_units_entry() -> None:
    ramp = (RampStep(T0, {"a": 0.25, "b": 0.5}), RampStep(T0 + timedelta(days=1),
                                                          {"a": 0.5, "b": 0.5}))
    experiment = ExperimentSettings(
        name="x", placements=("home",), control="a", salt="x", holdout=0.2, ramp=ramp,
        variants=(VariantSettings("a", 0.5), VariantSettings("b", 0.5)))
    early, late = T0 + timedelta(hours=1), T0 + timedelta(days=2)
    # early: a 0.8 * 0.25 = 0.2, b 0.4, holdout 0.2 (of 0.8); late: 0.4, 0.4, 0.2
    shares = _expected_shares(experiment, [early, late])
    assert shares == pytest.approx({"a": (0.25 + 0.4) / 2, "b": (0.5 + 0.4) / 2,
                                    "holdout": (0.25 + 0.2) / 2})


def test_purchase_events_are_credited_last_touch_within_the_window_once(shop: Any) -> None:
    sdk, served, rows, _ = shop
    experiment = sdk.settings.experiments[0]
    before = experiment_report(sdk.store, experiment, now=NOW)
    buyer = next(u for u in arm_of(served, "control")
                 if not any(r["request_id"] == served[u].request_id and r["type"] == "purchase"
                            for r in rows))
    twin = next(r for r in rows if r["type"] == "purchase"
                and r["request_id"] in {served[u].request_id for u in arm_of(served, "fresh")})
    twin_user = next(u for u, r in served.items() if r.request_id == twin["request_id"])
    sdk.track_many([
        # 2 days after the exposure: credited to control
        {"user_id": buyer, "item_id": "i7", "type": "purchase", "value": 40.0,
         "timestamp": (T0 + timedelta(days=2)).isoformat()},
        # 10 days after: outside a 7-day window, inside a 14-day one
        {"user_id": buyer, "item_id": "i8", "type": "purchase", "value": 5.0,
         "timestamp": (T0 + timedelta(days=10)).isoformat()},
        # the purchase the feedback row already counts: not twice
        {"user_id": twin_user, "item_id": twin["item_id"], "type": "purchase", "value": 30.0,
         "timestamp": (T0 + timedelta(hours=2)).isoformat()},
        # before any exposure: never credited
        {"user_id": buyer, "item_id": "i9", "type": "purchase", "value": 70.0,
         "timestamp": (T0 - timedelta(hours=1)).isoformat()},
    ])
    week = experiment_report(sdk.store, experiment, now=NOW)
    assert week.arm("control").attributed_purchases == 1
    assert week.arm("control").revenue == pytest.approx(before.arm("control").revenue + 40.0)
    assert week.arm("control").units_converted == before.arm("control").units_converted + 1
    assert week.arm("fresh").revenue == pytest.approx(before.arm("fresh").revenue)
    assert week.arm("fresh").attributed_purchases == 0
    fortnight = experiment_report(sdk.store, experiment, now=NOW, attribution_days=14)
    assert fortnight.arm("control").attributed_purchases == 2
    assert fortnight.arm("control").revenue == pytest.approx(
        before.arm("control").revenue + 45.0)
    early = experiment_report(sdk.store, experiment, now=T0 + timedelta(days=5))
    assert early.arm("control").attributed_purchases == 1  # the day-10 one has not happened


def test_an_experiment_without_exposures_says_so(shop: Any) -> None:
    sdk, _, _, _ = shop
    idle = next(e for e in sdk.settings.experiments if e.name == "idle_test")
    report = experiment_report(sdk.store, idle, now=NOW)
    assert report.arms == () and report.comparisons == () and report.winner is None
    assert "has no exposures yet" in report.message
    assert report.to_dict()["message"] == report.message
    before = experiment_report(sdk.store, sdk.settings.experiments[0],
                               now=T0 - timedelta(days=1))
    assert before.message is not None  # nothing served before T0


def invoke(config: Path, *args: str) -> click.testing.Result:
    group = click.Group("recsdk")
    experiments_cli.register(group)
    return CliRunner().invoke(group, ["experiments", *args], obj={"config": str(config)})


def test_cli_report_json_list_and_unknown_name(shop: Any) -> None:
    _, _, _, config = shop
    result = invoke(config, "report", "home_test", "--format", "json")
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert {v["variant"] for v in body["variants"]} == {"control", "fresh", "holdout"}
    assert body["winner"] == "fresh" and body["srm_p_value"] is not None
    assert {c["metric"] for c in body["comparisons"]} == {
        "click_rate", "add_to_cart_rate", "conversion_rate", "revenue_per_unit"}
    table = invoke(config, "report", "home_test")
    assert table.exit_code == 0 and "winner: fresh" in table.output
    idle = invoke(config, "report", "idle_test")
    assert idle.exit_code == 0 and "has no exposures yet" in idle.output
    unknown = invoke(config, "report", "nope")
    assert unknown.exit_code != 0
    assert "unknown experiment 'nope'; experiments: home_test, idle_test" in unknown.output
    listed = invoke(config, "list", "--json")
    assert listed.exit_code == 0
    names = {e["name"]: e for e in json.loads(listed.output)}
    assert names["home_test"]["variants"] == {"control": 0.5, "fresh": 0.5}
    assert names["home_test"]["holdout"] == 0.2
    assert names["home_test"]["running"] is True
    assert "home_test: placements home" in invoke(config, "list").output
