"""The admin dashboard's pages (``/admin``): one page with every section, its actions
(retrain, rollback) and each experiment's full HTML report.

Every request passes :func:`~demo_shop.admin.roles.require_admin` first, then the
shop's CSRF check (every POST carries the session's form token). Actions answer with a
redirect to the dashboard and a message; a refused action answers the shop's error page
with its status (404 unknown run, 409 a run that is not ready, a job already running,
nothing to train on) and says why.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from demo_shop.admin import panels, plots
from demo_shop.admin.roles import require_admin
from demo_shop.csrf import check_csrf
from demo_shop.extensions import recsdk_ext
from recsdk.experiments.config import ExperimentSettings
from recsdk.experiments.html import render_html
from recsdk.experiments.report import experiment_report
from recsdk.experiments.timeseries import cumulative_series
from recsdk.lifecycle import TrainingBusy
from recsdk.registry import ArtifactError, UnknownRun

log = logging.getLogger(__name__)

bp = Blueprint("admin", __name__, url_prefix="/admin")
bp.before_request(require_admin)  # first: a visitor is sent to log in, not told about CSRF
bp.before_request(check_csrf)


def _back(anchor: str) -> BaseResponse:
    window = request.args.get("window")
    return redirect(url_for("admin.dashboard", **({"window": window} if window else {}),
                            _anchor=anchor), code=303)


@bp.get("/")
def dashboard() -> str:
    """Every section, read now: health and plugins, model runs and jobs, experiments
    with their live reports, monitoring over the chosen window."""
    try:
        window = panels.parse_window(request.args.get("window"))
    except panels.BadWindow as exc:
        abort(400, str(exc))
    sdk = recsdk_ext.sdk()
    now = datetime.now(UTC)
    plugins = panels.section("plugins", lambda: panels.plugin_rows(sdk))
    health = panels.section("health", lambda: panels.health(sdk, plugins.value or []))
    runs = panels.section("model runs", lambda: panels.model_runs(sdk))
    experiments = [(e, panels.section(f"experiment {e.name}",
                                      lambda e=e: panels.experiment_panel(sdk, e, now)))
                   for e in sdk.settings.experiments]
    monitoring = panels.section("monitoring", lambda: panels.monitoring(sdk, window, now))
    figures = panels.section("monitoring plots", lambda: plots.placement_figures(
        monitoring.value.series, monitoring.value.since, monitoring.value.until)
        if monitoring.value is not None else {})
    return render_template("admin/dashboard.html", now=now, window=window,
                           windows=panels.WINDOWS, plugins=plugins, health=health, runs=runs,
                           experiments=experiments, monitoring=monitoring, figures=figures,
                           drift_alarm=DRIFT_ALARM)


#: A Jensen-Shannon distance above this is a visibly different mix (docs/monitoring.md).
DRIFT_ALARM = 0.1


@bp.post("/retrain")
def retrain() -> BaseResponse:
    """Start a training job in the background (the SDK's, as ``POST
    /api/v1/admin/train``); the page lists it with its status."""
    sdk = recsdk_ext.sdk()
    if sdk.store.count_events() == 0:
        abort(409, "No events are stored yet, so there is nothing to train on.")
    try:
        job_id = sdk.start_training()
    except TrainingBusy as exc:
        abort(409, f"{exc}.")
    flash(f"Training job {job_id[:12]} started; this page lists its status (reload to "
          "follow it). Its run is served as soon as it succeeds.", "success")
    return _back("runs")


@bp.post("/runs/<run_id>/activate")
def activate(run_id: str) -> BaseResponse:
    """Serve an older ready run (a rollback): activated in the registry, which every
    serving process follows within ``[models] model_refresh_s``, and loaded here at
    once. A run that cannot be loaded is not left active: the previous one is
    activated again."""
    sdk = recsdk_ext.sdk()
    try:
        run = sdk.registry.get(run_id)
    except UnknownRun as exc:
        abort(404, str(exc))
    if run.status != "ready":
        abort(409, f"Run {run.id[:12]} is {run.status}; only a ready run can be served.")
    previous = sdk.registry.active_run_id()
    sdk.registry.activate(run.id)
    try:
        sdk.load_models(run.id)
    except (ArtifactError, OSError) as exc:
        log.exception("admin: run %s could not be loaded; reactivating %s", run.id, previous)
        if previous is not None:
            sdk.registry.activate(previous)
        abort(409, f"Run {run.id[:12]} could not be loaded ({exc}); "
                   f"{'run ' + previous[:12] if previous else 'the previous run'} is still "
                   "served.")
    flash(f"Run {run.id[:12]} is active and served.", "success")
    return _back("runs")


def _configured(name: str) -> ExperimentSettings:
    configured = {e.name: e for e in recsdk_ext.sdk().settings.experiments}
    if name not in configured:
        abort(404, f"There is no experiment {name!r}; configured: "
                   f"{', '.join(sorted(configured)) or 'none'}.")
    return configured[name]


@bp.get("/experiments/<name>")
def experiment(name: str) -> Response:
    """The experiment's full report with its plots, as ``recsdk experiments report NAME
    --format html`` writes it (one self-contained page)."""
    found = _configured(name)
    store = recsdk_ext.sdk().store
    now = datetime.now(UTC)
    page = render_html(experiment_report(store, found, now=now),
                       cumulative_series(store, found, now=now))
    return Response(page, mimetype="text/html")
