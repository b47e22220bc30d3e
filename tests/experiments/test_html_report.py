"""The cumulative series (the report at successive cuts) and the HTML report built on it:
cuts, agreement with the plain report, intervals narrowing with traffic, the page's
tables, embedded PNGs, escaping, the empty case, the CLI and the admin endpoint."""

from __future__ import annotations

import base64
import dataclasses
import html
import json
import math
import re
from datetime import UTC, datetime, timedelta
from html import escape
from pathlib import Path
from typing import Any

import click
import matplotlib.pyplot as plt
import pytest
from click.testing import CliRunner
from sqlalchemy import update

from recsdk import RecSDK
from recsdk.api import create_app
from recsdk.cli import experiments as experiments_cli
from recsdk.experiments.html import plot_pngs, render_html
from recsdk.experiments.report import ExperimentReport, experiment_report
from recsdk.experiments.timeseries import (
    MAX_CUTS,
    LiftSeries,
    cumulative_series,
    cut_times,
)
from recsdk.storage import models

#: the first day of traffic (lists are moved back to it and the days after)
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(days=20)
DAYS = 10
PER_DAY = 24
#: noon of day 10, a day after the last lists: the tenth daily cut from the first one
NOW = T0 + timedelta(days=DAYS, hours=12)
KEY = {"X-API-Key": "secret"}
PNG = b"\x89PNG\r\n\x1a\n"


def config(tmp_path: Path) -> dict[str, Any]:
    return {"database_url": f"sqlite:///{tmp_path / 'shop.db'}",
            "pipeline": {"timeout_ms": 10_000},
            "api": {"api_key": "secret"},
            "plugins": {"popularity": {}},
            "experiments": {
                "home_test": {"placements": ["home"],
                              "variants": {"control": {"share": 0.5},
                                           "fresh": {"share": 0.5}}},
                "idle_test": {"placements": ["cart"],
                              "variants": {"a": {"share": 0.5}, "b": {"share": 0.5}}}},
            "placements": {"cart": {}}}


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """24 new users a day for 10 days, each served once at noon of their day; in fresh
    one in two buys (for 30), in control one in five (for 20), an hour after being
    served; every other user clicks in both. Shared: the tests only read it."""
    with RecSDK(config(tmp_path_factory.mktemp("shop")), environ={}) as sdk:
        sdk.upsert_items([{"id": f"i{n}", "stock": 5} for n in range(10)])
        sdk.track_many([{"user_id": f"old{n}", "item_id": "i0", "type": "purchase",
                         "timestamp": "2026-01-01T00:00:00Z"} for n in range(5)])
        sdk.fit()
        table = models.RecommendationRequest.__table__
        rows = []
        for day in range(DAYS):
            at = T0 + timedelta(days=day, hours=12)
            served = [sdk.recommend(f"u{day}-{n}", placement="home", k=2)
                      for n in range(PER_DAY)]
            sdk.request_log.flush()
            with sdk.store.engine.begin() as conn:
                conn.execute(update(table).where(table.c.id.in_(
                    [r.request_id for r in served])).values(created_at=at.replace(tzinfo=None)))
            for n, result in enumerate(served):
                base = {"request_id": result.request_id, "item_id": result.item_ids[0],
                        "timestamp": (at + timedelta(hours=1)).isoformat()}
                if n % 2 == 0:
                    rows.append({**base, "type": "click"})
                buys = n % 2 == 0 if result.variant == "fresh" else n % 5 == 0
                if buys:
                    rows.append({**base, "type": "purchase",
                                 "value": 30.0 if result.variant == "fresh" else 20.0})
        sdk.log_feedback(rows)
        yield sdk


def experiment(sdk: RecSDK, name: str = "home_test") -> Any:
    return next(e for e in sdk.settings.experiments if e.name == name)


@pytest.fixture(scope="module")
def built(shop: Any) -> tuple[ExperimentReport, LiftSeries]:
    """home_test's report and daily series at NOW."""
    e = experiment(shop)
    return (experiment_report(shop.store, e, now=NOW),
            cumulative_series(shop.store, e, now=NOW))


def test_cut_times_daily_evenly_spaced_capped_and_bad_points() -> None:
    start = T0
    assert cut_times(start, start + timedelta(days=3)) == [
        start + timedelta(days=1), start + timedelta(days=2), start + timedelta(days=3)]
    assert cut_times(start, start + timedelta(days=2, hours=1))[-1] == start + timedelta(
        days=2, hours=1)
    assert len(cut_times(start, start + timedelta(days=2, hours=1))) == 3
    assert cut_times(start, start + timedelta(hours=5)) == [start + timedelta(hours=5)]
    assert cut_times(start, start + timedelta(hours=8), points=4) == [
        start + timedelta(hours=h) for h in (2, 4, 6, 8)]
    long = cut_times(start, start + timedelta(days=200))
    assert len(long) == MAX_CUTS and long[-1] == start + timedelta(days=200)
    steps = {b - a for a, b in zip([start, *long], long, strict=False)}
    assert max(steps) - min(steps) <= timedelta(microseconds=1)  # evenly spaced
    for bad in (0, MAX_CUTS + 1, 2.5, True, "3"):
        with pytest.raises(ValueError, match=f"points must be a whole number from 1 to "
                                             f"{MAX_CUTS}, got"):
            cut_times(start, start + timedelta(days=1), points=bad)  # type: ignore[arg-type]


def test_series_is_the_report_at_each_daily_cut(
        shop: Any, built: tuple[ExperimentReport, LiftSeries]) -> None:
    sdk = shop
    e = experiment(sdk)
    final, series = built
    assert series.message is None
    assert series.first_exposure == T0 + timedelta(hours=12)
    # first exposure at noon of day 0: cuts a day apart from it, then NOW
    assert list(series.times) == [T0 + timedelta(days=d, hours=12)
                                  for d in range(1, DAYS + 1)]
    assert series.times[-1] == final.generated_at == NOW
    assert {(c.variant, c.metric) for c in series.comparisons} == {
        (c.treatment, c.metric) for c in final.comparisons}
    for c in final.comparisons:
        s = series.comparison(c.treatment, c.metric)
        assert s.control == "control"
        assert (s.estimate_control[-1], s.estimate_variant[-1]) == (
            c.estimate_control, c.estimate_treatment)
        assert (s.lift_abs[-1], s.lift_abs_ci[-1]) == (c.lift_abs, c.lift_abs_ci)
        assert (s.lift_rel[-1], s.lift_rel_ci[-1]) == (c.lift_rel, c.lift_rel_ci)
        assert (s.p_value[-1], s.p_value_adjusted[-1]) == (c.p_value, c.p_value_adjusted)
    middle = experiment_report(sdk.store, e, now=series.times[3])
    conversion = series.comparison("fresh", "conversion_rate")
    (expected,) = [c for c in middle.comparisons if c.metric == "conversion_rate"]
    assert conversion.lift_abs[3] == expected.lift_abs
    assert conversion.p_value_adjusted[3] == expected.p_value_adjusted
    for arm in final.arms:
        cumulative = series.arm(arm.name)
        assert (cumulative.units[-1], cumulative.exposures[-1]) == (arm.units, arm.exposures)
        assert cumulative.units[3] == middle.arm(arm.name).units
        assert list(cumulative.units) == sorted(cumulative.units)  # cumulative
    # the cut at noon of day k counts days 0..k (up to and including the cut); NOW adds
    # nothing after the cut at noon of day 10, when no list was served
    assert [sum(a.units[k] for a in series.arms) for k in range(DAYS)] == [
        PER_DAY * min(day + 1, DAYS) for day in range(1, DAYS + 1)]


def test_intervals_narrow_as_steady_traffic_accumulates(
        built: tuple[ExperimentReport, LiftSeries]) -> None:
    _, series = built
    for metric in ("click_rate", "conversion_rate", "revenue_per_unit"):
        c = series.comparison("fresh", metric)
        widths = [high - low for low, high in c.lift_abs_ci]
        assert widths[-1] < 0.6 * widths[0], (metric, widths)
    conversion = series.comparison("fresh", "conversion_rate")
    rel_widths = [high - low for low, high in conversion.lift_rel_ci]
    assert rel_widths[-1] < rel_widths[0]
    assert conversion.p_value[-1] < conversion.p_value[0]  # a planted, steady effect


def test_points_and_json(shop: Any) -> None:
    series = cumulative_series(shop.store, experiment(shop), now=NOW, points=4)
    start = T0 + timedelta(hours=12)
    assert list(series.times) == [start + (NOW - start) * k / 4 for k in range(1, 5)]
    body = json.loads(json.dumps(series.to_dict(), allow_nan=False))
    assert body["times"][-1] == NOW.isoformat()
    assert body["first_exposure"] == start.isoformat()
    assert {v["variant"] for v in body["variants"]} == {"control", "fresh"}
    conversion = next(c for c in body["comparisons"] if c["metric"] == "conversion_rate")
    assert len(conversion["lift_rel_ci"]) == 4 and len(conversion["lift_rel_ci"][0]) == 2
    with pytest.raises(ValueError, match="points must be"):
        cumulative_series(shop.store, experiment(shop), now=NOW, points=0)


def pngs(page: str) -> list[bytes]:
    found = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    return [base64.b64decode(b, validate=True) for b in found]


def test_the_page_holds_the_tables_numbers_and_embedded_plots(
        built: tuple[ExperimentReport, LiftSeries]) -> None:
    report, series = built
    open_before = plt.get_fignums()
    page = render_html(report, series)
    assert plt.get_fignums() == open_before  # no figure left in pyplot's registry
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "<script" not in page and "http://" not in page and "https://" not in page
    assert "<h1>Experiment home_test</h1>" in page
    assert f"<dd>{NOW.isoformat(timespec='seconds')}</dd>" in page  # generated at
    assert "7 days, last touch" in page and "holm at alpha 0.05" in page
    for arm in report.arms:
        m = arm.metrics()
        assert (f"<tr><td>{arm.name}</td><td>{arm.exposures}</td><td>{arm.units}</td>"
                f"<td>{arm.clicks}</td>") in page
        assert f"<td>{100 * m['conversion_rate']:.2f}%</td>" in page
        assert f"<td>{arm.revenue:.2f}</td>" in page
    for c in report.comparisons:
        low, high = c.lift_rel_ci
        # nobody adds to a cart: that relative lift is 0 / 0, shown as a dash
        rel = "–" if math.isnan(c.lift_rel) else (
            f"{100 * c.lift_rel:+.1f}% [{100 * low:+.1f}%, {100 * high:+.1f}%]")
        assert (f"<td>{c.estimate_control:.4g}</td><td>{c.estimate_treatment:.4g}</td>"
                f"<td>{c.lift_abs:+.4g} [{c.lift_abs_ci[0]:+.4g}, {c.lift_abs_ci[1]:+.4g}]"
                f"</td><td>{rel}</td><td>{c.p_value:.4g}</td><td>{c.p_value_adjusted:.4g}"
                f"</td><td>{'yes' if c.significant else 'no'}</td>") in page
    assert math.isnan(report.comparisons[1].lift_rel)  # add_to_cart_rate: the dash case
    assert report.winner == "fresh" and "<h2>Winner</h2><p>fresh</p>" in page
    assert f"{report.srm_p_value:.4g}" in page and 'class="warning"' not in page
    images = pngs(page)
    assert len(images) == 2  # the lift panels and the units per arm
    assert all(image.startswith(PNG) for image in images)
    for note in report.skipped:  # e.g. CUPED without pre-period purchases
        assert html.escape(note) in page


def test_the_plots_alone_are_the_pages(built: tuple[ExperimentReport, LiftSeries]) -> None:
    report, series = built
    plots = plot_pngs(series)
    assert list(plots) == ["lift", "units"]
    assert [base64.b64decode(p) for p in plots.values()] == pngs(render_html(report, series))
    assert plot_pngs(dataclasses.replace(series, times=())) == {}


def test_mismatch_warning_and_skipped_notes_are_shown(
        built: tuple[ExperimentReport, LiftSeries]) -> None:
    report, series = built
    broken = dataclasses.replace(report, srm_p_value=1e-7, srm_mismatch=True,
                                 skipped=("revenue_per_unit fresh vs control: too few",))
    page = render_html(broken, series)
    assert '<p class="warning" role="alert">Sample ratio mismatch' in page
    assert "<li>not computed: revenue_per_unit fresh vs control: too few</li>" in page


def test_every_given_string_is_escaped(built: tuple[ExperimentReport, LiftSeries]) -> None:
    """Configured names cannot hold markup ([A-Za-z0-9_.-]), so hostile ones are put
    into a report and series directly."""
    report, series = built
    # "$\\nope$" would be a mathtext error in a plot label, "_" a label matplotlib hides
    evil = '<script>alert("x")</script>&$\\nope$_'
    arms = tuple(dataclasses.replace(a, name=f"{a.name}{evil}") for a in report.arms)
    comparisons = tuple(dataclasses.replace(c, treatment=evil, metric=f"m{evil}")
                        for c in report.comparisons)
    plotted = dataclasses.replace(series, experiment=evil, control=evil, comparisons=tuple(
        dataclasses.replace(c, variant=evil) for c in series.comparisons), arms=tuple(
        dataclasses.replace(a, name=f"_{a.name}{evil}") for a in series.arms))
    hostile = dataclasses.replace(
        report, experiment=evil, control=evil, arms=arms, comparisons=comparisons,
        winner=evil, correction=evil, skipped=(evil,),
        expected_shares={f"{k}{evil}": v for k, v in report.expected_shares.items()})
    page = render_html(hostile, plotted)
    assert "<script" not in page and 'alert("x")' not in page
    assert len(pngs(page)) == 2
    assert escape(evil) in page
    assert page.count(escape(evil)) >= 10
    message = dataclasses.replace(hostile, message=f"nothing {evil}")
    assert "<script" not in render_html(message, dataclasses.replace(series, experiment=evil))


def test_no_exposures_renders_the_message_and_no_plots(shop: Any) -> None:
    idle = experiment(shop, "idle_test")
    report = experiment_report(shop.store, idle, now=NOW)
    series = cumulative_series(shop.store, idle, now=NOW)
    assert series.times == () and series.comparisons == () and series.arms == ()
    assert series.message == report.message and "has no exposures yet" in report.message
    assert series.to_dict()["first_exposure"] is None
    page = render_html(report, series)
    assert f"<p>{escape(report.message)}</p>" in page
    assert "<img" not in page and "<table" not in page
    # before the first exposure the busy experiment is empty too
    early = cumulative_series(shop.store, experiment(shop), now=T0)
    assert early.times == () and "has no exposures yet" in (early.message or "")


def test_a_series_of_another_experiment_is_refused(
        built: tuple[ExperimentReport, LiftSeries]) -> None:
    report, _ = built
    other = LiftSeries("idle_test", "a", 7, None, (), (), ())
    with pytest.raises(ValueError, match="series is of experiment 'idle_test', the report "
                                         "of 'home_test'"):
        render_html(report, other)


def write_config(tmp_path: Path, database_url: str) -> Path:
    path = tmp_path / "shop.toml"
    path.write_text(f"""
database_url = "{database_url}"
[pipeline]
timeout_ms = 10000
[plugins.popularity]
[experiments.home_test]
placements = ["home"]
[experiments.home_test.variants.control]
share = 0.5
[experiments.home_test.variants.fresh]
share = 0.5
""")
    return path


def invoke(config_path: Path, *args: str) -> click.testing.Result:
    group = click.Group("recsdk")
    experiments_cli.register(group)
    return CliRunner().invoke(group, ["experiments", *args], obj={"config": str(config_path)})


def test_cli_html_to_stdout_and_out_files(shop: Any, tmp_path: Path) -> None:
    path = write_config(tmp_path, shop.settings.database_url)  # the shop's database
    html_file = tmp_path / "out" / "report.html"
    html_file.parent.mkdir()
    written = invoke(path, "report", "home_test", "--format", "html", "--out", str(html_file))
    assert written.exit_code == 0, written.output
    page = html_file.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "<h1>Experiment home_test</h1>" in page
    assert len(pngs(page)) == 2 and "winner" in page.lower()
    assert written.stdout == ""  # the page went to the file only
    printed = invoke(path, "report", "home_test", "--format", "html")
    assert printed.exit_code == 0 and printed.stdout.startswith("<!DOCTYPE html>")
    json_file = tmp_path / "report.json"
    assert invoke(path, "report", "home_test", "--format", "json",
                  "--out", str(json_file)).exit_code == 0
    assert json.loads(json_file.read_text())["winner"] == "fresh"
    table_file = tmp_path / "report.txt"
    assert invoke(path, "report", "home_test", "--out", str(table_file)).exit_code == 0
    assert "winner: fresh" in table_file.read_text()
    bad = invoke(path, "report", "home_test", "--format", "pdf")
    assert bad.exit_code != 0 and "'pdf' is not one of 'table', 'json', 'html'" in bad.output
    unwritable = invoke(path, "report", "home_test", "--out", str(tmp_path / "no" / "r.txt"))
    assert unwritable.exit_code != 0
    assert "cannot write the report to" in unwritable.output


def test_admin_html_report_needs_the_key(shop: Any) -> None:
    client = create_app(shop).test_client()
    url = "/api/v1/admin/experiments/home_test/report.html"
    assert client.get(url).status_code == 401
    assert client.get(url, headers={"X-API-Key": "wrong"}).status_code == 401
    answer = client.get(f"{url}?attribution_days=3", headers=KEY)
    assert answer.status_code == 200 and answer.mimetype == "text/html"
    page = answer.get_data(as_text=True)
    assert "<h1>Experiment home_test</h1>" in page and "3 days, last touch" in page
    assert len(pngs(page)) == 2
    idle = client.get("/api/v1/admin/experiments/idle_test/report.html", headers=KEY)
    assert idle.status_code == 200 and "has no exposures yet" in idle.get_data(as_text=True)
    missing = client.get("/api/v1/admin/experiments/nope/report.html", headers=KEY)
    assert missing.status_code == 404 and "home_test" in missing.get_json()["message"]
    bad = client.get(f"{url}?attribution_days=-1", headers=KEY)
    assert bad.status_code == 422
    doc = client.get("/api/openapi.json").get_json()
    operation = doc["paths"]["/api/v1/admin/experiments/{name}/report.html"]["get"]
    assert set(operation["responses"]["200"]["content"]) == {"text/html"}
    assert operation["security"]
    json_report = client.get("/api/v1/admin/experiments/home_test/report", headers=KEY)
    assert json_report.status_code == 200 and json_report.get_json()["winner"] == "fresh"
