"""The admin dashboard: only admins get in, every section shows what recsdk knows,
retrain and rollback act on the SDK, and bad input is refused naming the problem."""

from __future__ import annotations

import base64
import html
import re
import threading
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import delete, select

from demo_shop.admin import duration, number, percent
from demo_shop.extensions import current_shop, recsdk_ext
from recsdk.experiments.report import experiment_report
from recsdk.monitoring import serving_series
from recsdk.registry import ArtifactError
from recsdk.storage import models
from tests.demo_shop.conftest import csrf, login

PRODUCT = "i010"


def login_target(location: str) -> str:
    """Where the login page will send the visitor back to (its ``next``)."""
    parts = urlsplit(location)
    assert parts.path == "/login"
    return parse_qs(parts.query)["next"][0]


def login_admin(client: FlaskClient, password: str = "demo") -> Any:
    return login(client, "admin", password)


def sdk_of(app: Flask) -> Any:
    return recsdk_ext.sdk(app)


def section(page: str, anchor: str) -> str:
    """One section of the dashboard (``<section ... id="anchor">...</section>``)."""
    found = re.search(rf'<section class="panel" id="{anchor}">(.*?)</section>', page, re.S)
    assert found, f"no section {anchor!r}"
    return found.group(1)


def table_rows(text: str, table_id: str, key: str) -> dict[str, list[str]]:
    """The cells of each row of a table, by the row's ``data-<key>`` attribute (several
    attributes joined with "/")."""
    body = re.search(rf'<table class="data[^"]*" id="{table_id}">(.*?)</table>', text, re.S)
    assert body, f"no table {table_id!r}"
    out = {}
    for attrs, cells in re.findall(r"<tr ([^>]*)>(.*?)</tr>", body.group(1), re.S):
        values = dict(re.findall(r'data-([\w-]+)="([^"]*)"', attrs))
        name = "/".join(values[k] for k in key.split("/"))
        out[name] = [html.unescape(re.sub(r"<[^>]+>", "", c)).strip()
                     for c in re.findall(r"<td[^>]*>(.*?)</td>", cells, re.S)]
    return out


def pngs(text: str) -> list[bytes]:
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    return [base64.b64decode(i) for i in images]


def visit_as_visitors(app: Flask, visitors: int) -> None:
    """Each visitor (own cookies) opens the home page and a product page; the served
    lists are then written (the request log writes in the background)."""
    for _ in range(visitors):
        browser = app.test_client()
        assert browser.get("/").status_code == 200
        assert browser.get(f"/p/{PRODUCT}").status_code == 200
    assert sdk_of(app).request_log.flush()


def react(app: Flask) -> dict[str, int]:
    """Click the first item of every other home list and buy from one; the counts."""
    sdk = sdk_of(app)
    req, imp = models.RecommendationRequest.__table__, models.Impression.__table__
    with sdk.store.engine.connect() as conn:
        shown = conn.execute(select(req.c.id, imp.c.item_id)
                             .join(imp, imp.c.request_id == req.c.id)
                             .where(req.c.placement == "home")
                             .order_by(req.c.created_at, imp.c.position)).all()
    firsts: dict[str, str] = {}
    for request_id, item in shown:
        firsts.setdefault(request_id, item)
    lists = list(firsts.items())
    clicks = [{"request_id": i, "item_id": item, "type": "click"} for i, item in lists[::2]]
    bought = {"request_id": lists[0][0], "item_id": lists[0][1], "type": "purchase",
              "value": 25.0}
    sdk.log_feedback([*clicks, bought])
    return {"home_lists": len(lists), "clicks": len(clicks)}


# ---- who gets in ---------------------------------------------------------------------


def test_anonymous_visitors_are_sent_to_log_in(client: FlaskClient) -> None:
    for path in ("/admin/", "/admin/?window=7d", "/admin/experiments/home_ranking"):
        answer = client.get(path)
        assert answer.status_code == 302, path
        assert login_target(answer.headers["Location"]) == path
    posted = client.post("/admin/retrain", data={"csrf_token": csrf(client)})
    assert posted.status_code == 302
    assert login_target(posted.headers["Location"]) == "/admin/"  # not the form's URL
    assert "log in with an admin account" in client.get("/login").text


def test_customers_are_refused(app: Flask, client: FlaskClient) -> None:
    login(client)
    page = client.get("/admin/")
    assert page.status_code == 403
    assert "for the shop&#39;s administrators" in page.text
    assert client.post("/admin/retrain", data={"csrf_token": csrf(client)}).status_code == 403
    assert sdk_of(app).jobs.recent() == []  # nothing started
    assert ">Dashboard</a>" not in client.get("/").text


def test_the_admin_logs_in_with_the_configured_password(make_app: Any) -> None:
    app = make_app(DEMO_SHOP_ADMIN_PASSWORD="s3cret-admin")
    client = app.test_client()
    assert login_admin(client).status_code == 401  # the demo's default no longer works
    assert login_admin(client, "s3cret-admin").status_code == 302
    page = client.get("/admin/")
    assert page.status_code == 200  # no page with a widget was opened yet: empty states
    assert "has no exposures yet" in section(page.text, "experiments")
    assert "No list was served in this window." in section(page.text, "monitoring")
    assert ">Dashboard</a>" in client.get("/").text
    login_page = app.test_client().get("/login").text
    assert "<code>admin</code> Shop admin" not in login_page  # not among the customers
    assert "u01" in login_page


def test_every_form_of_the_dashboard_needs_the_csrf_token(app: Flask,
                                                          client: FlaskClient) -> None:
    login_admin(client)
    run = sdk_of(app).model_run
    for path in ("/admin/retrain", f"/admin/runs/{run}/activate"):
        answer = client.post(path, data={"csrf_token": "forged"})
        assert answer.status_code == 400 and "csrf_token" in answer.text
    assert sdk_of(app).jobs.recent() == []


# ---- the sections --------------------------------------------------------------------


def test_the_admin_sees_every_section_with_data(app: Flask, client: FlaskClient) -> None:
    visit_as_visitors(app, 8)
    reactions = react(app)
    login_admin(client)
    page = client.get("/admin/")
    assert page.status_code == 200
    sdk = sdk_of(app)
    now = datetime.now(UTC)

    plugins = table_rows(section(page.text, "plugins"), "plugins-table", "plugin")
    assert set(plugins) == {p.name for p in sdk.settings.plugins}
    for name, cells in plugins.items():
        assert cells[2] == "yes", name  # the template's run holds every plugin's state
        assert cells[3] == "closed" and cells[6] == "0", name
    assert 'id="health-status">ok<' in page.text

    runs = section(page.text, "runs")
    active = sdk.registry.active_run_id()
    assert active == sdk.model_run
    info = sdk.registry.get(active)
    row = table_rows(runs, "runs-table", "run")[active]
    assert row[0].startswith(active[:12]) and "active" in row[0] and "served here" in row[0]
    assert row[1] == "ready"
    assert row[4:7] == [str(info.stats["users"]), str(info.stats["items"]),
                        str(info.stats["interactions"])]
    offline = info.stats["offline"]  # config/demo.toml: [models] offline_eval = true
    assert row[9].startswith(f"{offline['metrics']['ndcg']:.4f} / "
                             f"{offline['metrics']['recall']:.4f}")

    experiment = section(page.text, "experiments")
    home = sdk.settings.experiments[0]
    report = experiment_report(sdk.store, home, now=now)
    arms = _arm_rows(experiment)
    assert set(arms) == {a.name for a in report.arms} == {"blend", "popular"}
    for a in report.arms:
        assert arms[a.name]["exposures"] == str(a.exposures)
        assert arms[a.name]["units"] == str(a.units)
        assert arms[a.name]["clicks"] == str(a.clicks)
    assert sum(a.exposures for a in report.arms) == reactions["home_lists"]
    assert sum(a.clicks for a in report.arms) == reactions["clicks"]
    assert sum(a.units for a in report.arms) == 8
    images = pngs(experiment)
    assert len(images) == 2 and all(i.startswith(b"\x89PNG\r\n") for i in images)
    assert 'alt="cumulative relative lift of home_ranking' in experiment

    mon = section(page.text, "monitoring")
    served = serving_series(sdk.store, *_window(mon), bucket=_span(mon))
    rows = table_rows(mon, "serving-table", "placement/variant")
    expected = {f"{r.placement}/{r.variant}": r for r in served.itertuples()}
    assert set(rows) == set(expected)
    assert {"home", "trending", "similar", "bought_together"} <= {k.split("/")[0] for k in rows}
    for key, r in expected.items():
        assert rows[key][2] == str(r.lists), key
        assert rows[key][3] == number(r.latency_p50_ms, ".1f")
        assert rows[key][8] == percent(r.ctr)
    assert sum(int(r[2]) for k, r in rows.items() if k.startswith("home/")) == (
        reactions["home_lists"])
    plots = re.findall(r'<img class="plot" data-placement="([^"]+)"', mon)
    assert sorted(plots) == sorted({k.split("/")[0] for k in rows})
    assert all(i.startswith(b"\x89PNG\r\n") for i in pngs(mon))

    staleness = re.search(r'<dd class="events-since">(\d+)</dd>', mon).group(1)
    ev = models.Event.__table__
    with sdk.store.engine.connect() as conn:
        newer = conn.execute(select(ev.c.id).where(ev.c.id > info.events_through)).all()
    assert int(staleness) == len(newer) == 8  # each visitor's product view
    drift = table_rows(mon, "drift-table", "type")
    assert drift["view"][1] == "100.0%"  # the visits of the last day: views only

    metrics = client.get("/metrics").text  # the shop's deployment has the gauges too
    assert "recsdk_model_events_since_training 8.0" in metrics
    assert 'recsdk_event_mix_events{window="recent"} 8.0' in metrics


def _arm_rows(text: str) -> dict[str, dict[str, str]]:
    """The experiment's arms table: cells by class, per variant."""
    out = {}
    for variant, cells in re.findall(r'<tr data-variant="([^"]+)">(.*?)</tr>', text, re.S):
        out[variant] = dict(re.findall(r'<td class="(\w+)">([^<]*)</td>', cells))
    return out


def _window(text: str) -> tuple[datetime, datetime]:
    since, until = re.search(r"Lists served from (\S+) to (\S+) \(UTC\)", text).groups()
    return datetime.fromisoformat(since), datetime.fromisoformat(until)


def _span(text: str) -> Any:
    since, until = _window(text)
    return until - since


def test_the_window_is_one_of_three(app: Flask, client: FlaskClient) -> None:
    visit_as_visitors(app, 1)
    login_admin(client)
    for key, hours in (("1h", 1), ("24h", 24), ("7d", 168)):
        page = client.get(f"/admin/?window={key}")
        assert page.status_code == 200, key
        since, until = _window(section(page.text, "monitoring"))
        assert (until - since).total_seconds() == hours * 3600
        assert "home" in table_rows(page.text, "serving-table", "placement/variant").__repr__()
    for bad in ("2d", "24H", "x" * 300):
        answer = client.get(f"/admin/?window={bad}")
        assert answer.status_code == 400
        assert "window must be one of 1h, 24h, 7d" in html.unescape(answer.text)
        assert repr(bad[:40]) in html.unescape(answer.text)


def test_a_section_that_fails_shows_its_error_and_the_others_render(
        app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch) -> None:
    from demo_shop.admin import panels

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the report is broken")

    monkeypatch.setattr(panels, "experiment_report", broken)
    login_admin(client)
    page = client.get("/admin/")
    assert page.status_code == 200
    assert "The report could not be read: RuntimeError: the report is broken" in page.text
    assert table_rows(page.text, "plugins-table", "plugin")
    assert "Model staleness" in page.text


def test_the_full_report_of_an_experiment(app: Flask, client: FlaskClient) -> None:
    visit_as_visitors(app, 4)
    login_admin(client)
    page = client.get("/admin/experiments/home_ranking")
    assert page.status_code == 200 and page.mimetype == "text/html"
    assert "<h1>Experiment home_ranking</h1>" in page.text and pngs(page.text)
    missing = client.get("/admin/experiments/nope")
    assert missing.status_code == 404
    assert "no experiment &#39;nope&#39;; configured: home_ranking" in missing.text


# ---- retrain and rollback ------------------------------------------------------------


def test_retrain_starts_a_job_and_rollback_serves_the_previous_run(
        app: Flask, client: FlaskClient) -> None:
    sdk = sdk_of(app)
    first = sdk.model_run
    login_admin(client)
    started = client.post("/admin/retrain?window=7d", data={"csrf_token": csrf(client, "/admin/")})
    assert started.status_code == 303
    assert started.headers["Location"] == "/admin/?window=7d#runs"
    [job] = sdk.jobs.recent()
    page = client.get("/admin/?window=7d")
    assert f"Training job {job['id'][:12]} started" in page.text
    jobs = table_rows(section(page.text, "runs"), "jobs-table", "job")
    assert jobs[job["id"]][1] in ("queued", "running", "succeeded")
    sdk.jobs.wait(timeout_s=120)
    job = sdk.jobs.get(job["id"])
    assert job["status"] == "succeeded", job
    second = job["result"]["run_id"]
    assert second != first and sdk.model_run == second
    runs = section(client.get("/admin/").text, "runs")
    assert table_rows(runs, "jobs-table", "job")[job["id"]][1:2] == ["succeeded"]
    rows = table_rows(runs, "runs-table", "run")
    assert "active" in rows[second][0] and "active" not in rows[first][0]
    assert f'action="/admin/runs/{first}/activate' in runs  # the older run can be served
    assert f'action="/admin/runs/{second}/activate' not in runs

    back = client.post(f"/admin/runs/{first}/activate",
                       data={"csrf_token": csrf(client, "/admin/")})
    assert back.status_code == 303
    assert sdk.registry.active_run_id() == first and sdk.model_run == first
    with app.test_request_context("/"):
        assert recsdk_ext.recommend("home", k=4).model_run == first
    assert client.get("/api/v1/recommendations?user_id=u01&k=3").get_json()[
        "model_run"] == first
    page = client.get("/admin/").text
    assert f"Run {first[:12]} is active and served." in page
    assert "active" in table_rows(section(page, "runs"), "runs-table", "run")[first][0]


def test_retrain_is_refused_while_a_job_runs_or_without_events(
        app: Flask, client: FlaskClient) -> None:
    sdk = sdk_of(app)
    login_admin(client)
    token = csrf(client, "/admin/")
    release = threading.Event()
    sdk.jobs.start(lambda: {"waited": release.wait(30)})
    try:
        busy = client.post("/admin/retrain", data={"csrf_token": token})
        assert busy.status_code == 409 and "already running" in busy.text
    finally:
        release.set()
        sdk.jobs.wait(timeout_s=10)
    with sdk.store.engine.begin() as conn:
        conn.execute(delete(models.Event.__table__))
    empty = client.post("/admin/retrain", data={"csrf_token": token})
    assert empty.status_code == 409 and "nothing to train on" in empty.text
    assert len(sdk.jobs.recent()) == 1  # only the blocking job above


def test_rollback_refuses_unknown_unready_and_unloadable_runs(
        app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch) -> None:
    sdk = sdk_of(app)
    active = sdk.model_run
    login_admin(client)
    token = csrf(client, "/admin/")
    unknown = client.post("/admin/runs/0123456789abcdef/activate", data={"csrf_token": token})
    assert unknown.status_code == 404 and "no model run" in html.unescape(unknown.text)
    bad = client.post("/admin/runs/not-a-run/activate", data={"csrf_token": token})
    assert bad.status_code == 404

    failed = sdk.registry.begin_run(sdk.config_hash, ["popularity"])
    sdk.registry.fail_run(failed, "boom")
    refused = client.post(f"/admin/runs/{failed}/activate", data={"csrf_token": token})
    assert refused.status_code == 409
    assert f"Run {failed[:12]} is failed; only a ready run" in refused.text

    # a ready run whose files cannot be loaded: the previous run stays active and served
    ready = sdk.registry.begin_run(sdk.config_hash, ["popularity"])
    sdk.registry.finish_run(ready, fingerprint="x", events_through=None, stats={},
                            activate=False)

    def unloadable(run_id: str | None = None) -> bool:
        raise ArtifactError(f"artifact run:vocabulary of {run_id} is missing")

    monkeypatch.setattr(sdk, "load_models", unloadable)
    broken = client.post(f"/admin/runs/{ready}/activate", data={"csrf_token": token})
    assert broken.status_code == 409 and "could not be loaded" in broken.text
    assert sdk.registry.active_run_id() == active == sdk.model_run


# ---- formats -------------------------------------------------------------------------


def test_number_formats() -> None:
    assert (percent(0.1234), percent(None), percent(float("nan"))) == ("12.3%", "–", "–")
    assert (number(3.14159, ".2f"), number(None)) == ("3.14", "–")
    assert [duration(s) for s in (0, 59.6, 61, 3_725, 90_061, None)] == [
        "0 s", "1 min", "1 min 1 s", "1 h 2 min", "1 d 1 h", "–"]


def test_the_admin_account_is_made_once_and_follows_the_password(make_app: Any) -> None:
    app = make_app()
    from demo_shop import db
    from demo_shop.admin.roles import ensure_admin_account

    with app.app_context():
        engine = current_shop().engine
        ensure_admin_account(engine, "demo")  # again: nothing changes
        with engine.connect() as conn:
            admins = conn.execute(select(db.admins.c.account_id)).scalars().all()
            hashed = conn.execute(select(db.accounts.c.password_hash).where(
                db.accounts.c.id == "admin")).scalar_one()
        assert admins == ["admin"]
        ensure_admin_account(engine, "another")
        with engine.connect() as conn:
            assert conn.execute(select(db.accounts.c.password_hash).where(
                db.accounts.c.id == "admin")).scalar_one() != hashed
        with pytest.raises(ValueError, match="must not be empty"):
            ensure_admin_account(engine, "")
        with engine.begin() as conn:  # a customer made admin by a row of shop_admins
            conn.execute(db.admins.insert().values(account_id="u01"))
    client = app.test_client()
    login(client)
    assert client.get("/admin/").status_code == 200
