"""The report beyond counts: lists seen, users and sessions, any-touch credit, latency
and error guardrails, CUPED with the pre-period, the always-valid sequential tests and
the ROI against the holdout net of costs, each equal to the direct statistic."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

import numpy as np
import pytest
from sqlalchemy import update

from recsdk import RecSDK
from recsdk.experiments.config import HOLDOUT
from recsdk.experiments.report import experiment_report
from recsdk.experiments.sequential import msprt, msprt_rates
from recsdk.experiments.stats import compare_means, compare_rates, cuped
from recsdk.storage import models
from tests.experiments.test_report import NOW, T0, arm_of, shop  # noqa: F401 (fixture)

COSTS = """
[experiments.home_test.costs]
margin = 0.4
compute_per_1000_requests = 50.0
licences_per_day = 2.0
"""


def test_seen_lists_users_and_sessions_are_counted(shop: Any) -> None:  # noqa: F811
    sdk, served, _, _ = shop
    fresh = arm_of(served, "fresh")
    seen = fresh[:5]
    sdk.log_feedback([{"request_id": served[u].request_id, "item_id": served[u].item_ids[0],
                       "type": "impression", "timestamp": (T0 + timedelta(minutes=1))
                       .isoformat()} for u in seen])
    report = experiment_report(sdk.store, sdk.settings.experiments[0], now=NOW)
    arm = report.arm("fresh")
    assert arm.seen_exposures == 5 and arm.seen_exposures_clicked == 5  # fresh all click
    assert arm.metrics()["seen_rate"] == 5 / arm.exposures
    assert arm.metrics()["ctr_seen"] == 1.0
    assert report.arm("control").seen_exposures == 0
    assert report.arm("control").metrics()["ctr_seen"] is None
    # one list per user, no sessions: each list is its own session
    assert arm.users == arm.units == arm.sessions == len(fresh)
    assert arm.metrics()["revenue_per_session"] == pytest.approx(arm.revenue / len(fresh))


def test_any_touch_credits_every_arm_that_served_the_buyer(shop: Any) -> None:  # noqa: F811
    sdk, served, _, _ = shop
    experiment = sdk.settings.experiments[0]
    buyer = arm_of(served, "control")[0]
    # the same person later browses anonymously-then-logged-in in the fresh arm: a QA
    # list would not count, so log a second real exposure of the fresh arm for them
    other = sdk.recommend(arm_of(served, "fresh")[0], placement="home", k=3)
    sdk.request_log.flush()
    table = models.RecommendationRequest.__table__
    with sdk.store.engine.begin() as conn:
        conn.execute(update(table).where(table.c.id == other.request_id).values(
            user_id=buyer, created_at=(T0 + timedelta(hours=3)).replace(tzinfo=None)))
    before = experiment_report(sdk.store, experiment, now=NOW)
    sdk.track_many([{"user_id": buyer, "item_id": "i9", "type": "purchase", "value": 50.0,
                     "timestamp": (T0 + timedelta(days=1)).isoformat()}])
    after = experiment_report(sdk.store, experiment, now=NOW)
    for name in ("control", "fresh"):  # both touched the buyer within the window
        assert after.arm(name).any_touch_purchases == before.arm(name).any_touch_purchases + 1
        assert after.arm(name).any_touch_revenue == pytest.approx(
            before.arm(name).any_touch_revenue + 50.0)
    # last touch: only the latest exposure's arm (fresh, 3 hours in)
    assert after.arm("fresh").attributed_purchases == before.arm("fresh").attributed_purchases + 1
    assert after.arm("control").attributed_purchases == before.arm(
        "control").attributed_purchases


def test_guardrails_report_latency_percentiles_and_error_rates(shop: Any) -> None:  # noqa: F811
    sdk, served, _, _ = shop
    experiment = sdk.settings.experiments[0]
    table = models.RecommendationRequest.__table__
    fresh = [served[u].request_id for u in arm_of(served, "fresh")]
    with sdk.store.engine.begin() as conn:
        stored = dict(conn.execute(table.select().with_only_columns(
            table.c.id, table.c.latency_ms)).all())
        conn.execute(update(table).where(table.c.id.in_(fresh[:4])).values(failures=2))
    assert all(v is not None and v > 0 for v in stored.values())  # logged when served
    report = experiment_report(sdk.store, experiment, now=NOW)
    arm = report.arm("fresh")
    lat = [stored[r] for r in fresh]
    g = arm.guardrails()
    assert g["latency_p50_ms"] == pytest.approx(np.percentile(lat, 50))
    assert g["latency_p99_ms"] == pytest.approx(np.percentile(lat, 99))
    assert arm.errored == 4 and g["error_rate"] == 4 / arm.exposures
    c = report.arm("control")
    direct = compare_rates(c.errored, c.exposures, arm.errored, arm.exposures,
                           metric="error_rate", control="control", treatment="fresh")
    got = next(x for x in report.guardrails if x.metric == "error_rate")
    assert got == direct
    body = report.to_dict()
    assert {x["metric"] for x in body["guardrails"]} == {"error_rate", "degraded_rate"}
    assert body["variants"][1]["guardrails"]["error_rate"] == g["error_rate"]


def test_cuped_uses_each_units_pre_period_revenue(shop: Any) -> None:  # noqa: F811
    sdk, served, _, _ = shop
    experiment = sdk.settings.experiments[0]
    plain = experiment_report(sdk.store, experiment, now=NOW)
    assert plain.cuped == ()  # no purchases before the exposures: constant covariate
    assert any("cuped fresh vs control" in s for s in plain.skipped), plain.skipped
    # heavy buyers before the experiment buy more in it: a correlated pre-period
    pre = []
    for n, (user, result) in enumerate(sorted(served.items())):
        pre.append({"user_id": user, "item_id": "i5", "type": "purchase",
                    "value": 10.0 * (n % 4), "timestamp": (T0 - timedelta(days=3)).isoformat()})
        if n % 4 == 3:
            pre.append({"user_id": user, "item_id": "i6", "type": "purchase", "value": 60.0,
                        "timestamp": (T0 + timedelta(days=1)).isoformat()})
        # long before the pre-period: never the covariate
        pre.append({"user_id": user, "item_id": "i4", "type": "purchase", "value": 999.0,
                    "timestamp": (T0 - timedelta(days=40)).isoformat()})
        assert result.request_id
    sdk.track_many(pre)
    report = experiment_report(sdk.store, experiment, now=NOW)
    (got,) = report.cuped
    c, f = report.arm("control"), report.arm("fresh")
    assert max(c.unit_pre_revenue) == 30.0  # the day -40 purchase is outside 14 days
    direct = cuped(c.unit_revenue, c.unit_pre_revenue, f.unit_revenue, f.unit_pre_revenue)
    assert got.theta == pytest.approx(direct.theta)
    assert got.variance_reduction == pytest.approx(direct.variance_reduction)
    assert got.variance_reduction > 0.1
    assert got.comparison == compare_means(direct.control, direct.treatment,
                                           metric="revenue_per_unit_cuped",
                                           control="control", treatment="fresh")
    plain_rev = next(x for x in report.comparisons if x.metric == "revenue_per_unit")
    width = np.diff(got.comparison.lift_abs_ci)[0]
    assert width < np.diff(plain_rev.lift_abs_ci)[0]  # tighter interval, same data


def test_sequential_tests_are_the_direct_msprt(shop: Any) -> None:  # noqa: F811
    sdk, _, _, _ = shop
    report = experiment_report(sdk.store, sdk.settings.experiments[0], now=NOW)
    c, f = report.arm("control"), report.arm("fresh")
    conv, rev = report.sequential
    assert conv == msprt_rates(c.units_converted, c.units, f.units_converted, f.units,
                               metric="fresh:conversion_rate")
    rc, rf = np.array(c.unit_revenue), np.array(f.unit_revenue)
    assert rev == msprt(rc.mean(), rc.var(ddof=1), rc.size, rf.mean(), rf.var(ddof=1),
                        rf.size, metric="fresh:revenue_per_unit")
    body = report.to_dict()["sequential"]
    assert body[0]["variant"] == "fresh" and body[0]["metric"] == "conversion_rate"
    assert body[0]["p_value"] == conv.p_value
    # valid at every look, so never below the fixed-horizon test's p on the same data
    fixed = next(x for x in report.comparisons if x.metric == "conversion_rate")
    assert conv.p_value >= fixed.p_value


def test_roi_against_the_holdout_net_of_costs(shop: Any) -> None:  # noqa: F811
    sdk, _, _, config = shop
    report = experiment_report(sdk.store, sdk.settings.experiments[0], now=NOW)
    assert report.roi is not None and report.roi.costs == 0 and report.roi.roi is None
    config.write_text(config.read_text() + COSTS)
    with RecSDK(str(config), environ={}) as again:
        experiment = again.settings.experiments[0]
        report = experiment_report(again.store, experiment, now=NOW)
    roi = report.roi
    assert roi is not None
    h = report.arm(HOLDOUT)
    treated = [report.arm("control"), report.arm("fresh")]
    revenue = np.array([r for a in treated for r in a.unit_revenue])
    direct = compare_means(np.array(h.unit_revenue), revenue, metric="revenue_per_unit",
                           control=HOLDOUT, treatment="placement")
    assert roi.comparison == direct
    exposures = sum(a.exposures for a in treated)
    days = (NOW - T0).total_seconds() / 86400
    assert roi.treated_units == revenue.size and roi.treated_exposures == exposures
    assert roi.compute_cost == pytest.approx(50.0 * exposures / 1000)
    assert roi.licence_cost == pytest.approx(2.0 * days)
    assert roi.net_gain == pytest.approx(0.4 * direct.lift_abs * revenue.size - roi.costs)
    assert roi.roi == pytest.approx(roi.net_gain / roi.costs)
    low, high = roi.net_gain_ci
    assert low < roi.net_gain < high
    body = report.to_dict()["roi"]
    assert body["roi"] == pytest.approx(roi.roi) and body["costs"] == pytest.approx(roi.costs)


def test_no_holdout_no_roi(shop: Any) -> None:  # noqa: F811
    sdk, _, _, _ = shop
    experiment = dataclasses.replace(sdk.settings.experiments[0], holdout=0.0)
    report = experiment_report(sdk.store, experiment, now=NOW)
    assert report.roi is None and report.to_dict()["roi"] is None


def test_the_table_prints_guardrails_sequential_and_roi(shop: Any) -> None:  # noqa: F811
    from tests.experiments.test_report import invoke

    _, _, _, config = shop
    out = invoke(config, "report", "home_test").output
    assert "guardrails fresh: latency p50/p95/p99" in out
    assert "always-valid fresh conversion_rate: p" in out
    assert "placement vs holdout: incremental revenue" in out


def test_postgresql_gives_the_same_report(shop: Any) -> None:  # noqa: F811
    """The report's SQL (aggregates, CASE, string concatenation) on the other dialect."""
    from recsdk.storage.store import Store
    from tests.postgres import fresh_postgres_database

    sdk, served, _, _ = shop
    experiment = sdk.settings.experiments[0]
    buyer = arm_of(served, "control")[0]
    sdk.track_many([{"user_id": buyer, "item_id": "i9", "type": "purchase", "value": 50.0,
                     "timestamp": (T0 + timedelta(days=1)).isoformat()},
                    {"user_id": buyer, "item_id": "i8", "type": "purchase", "value": 5.0,
                     "timestamp": (T0 - timedelta(days=2)).isoformat()}])
    with fresh_postgres_database() as url:
        pg = Store(url)
        pg.create_all()
        with sdk.store.engine.connect() as src, pg.engine.begin() as dst:
            for model in (models.RecommendationRequest, models.Feedback, models.Event):
                table = model.__table__
                rows = [dict(r._mapping) for r in src.execute(table.select())]
                dst.execute(table.insert(), rows)
        got = experiment_report(pg, experiment, now=NOW).to_dict()
        pg.engine.dispose()
    want = experiment_report(sdk.store, experiment, now=NOW).to_dict()
    assert got == want
    assert want["variants"][0]["counts"]["attributed_purchases"] == 1


def test_the_html_page_shows_guardrails_sequential_and_roi(shop: Any) -> None:  # noqa: F811
    from recsdk.experiments.html import render_html
    from recsdk.experiments.timeseries import cumulative_series

    sdk, _, _, _ = shop
    experiment = sdk.settings.experiments[0]
    report = experiment_report(sdk.store, experiment, now=NOW)
    page = render_html(report, cumulative_series(sdk.store, experiment, now=NOW, points=2))
    assert "<h2>Guardrails</h2>" in page and "<h2>Return against the holdout</h2>" in page
    assert "<h2>Always-valid sequential tests (mSPRT)</h2>" in page
    assert f"<td>{report.sequential[0].p_value:.4g}</td>" in page
