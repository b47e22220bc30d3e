"""Operator actions over HTTP, guarded by the API key: training jobs, model runs and
A/B experiments' reports.

Training runs in the background (202 with a job id) so that a long fit never holds
an HTTP worker; the process keeps serving its current run until the new one is
complete, then swaps to it. Runs can be listed and an older one activated (rollback);
every serving process picks the activated run up within ``model_refresh_s``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Response, jsonify, url_for
from flask_smorest import Blueprint

from recsdk.api.auth import SECURITY, require_api_key
from recsdk.api.errors import fail
from recsdk.api.extension import current_sdk
from recsdk.api.schemas import (
    ExperimentReportSchema,
    ExperimentSummarySchema,
    ModelRunSchema,
    ReportQuery,
    TrainJobSchema,
)
from recsdk.experiments.config import ExperimentSettings
from recsdk.lifecycle import TrainingBusy
from recsdk.registry import UnknownRun


def make_admin_blueprint() -> Blueprint:
    blp = Blueprint("admin", __name__, url_prefix="/api/v1/admin",
                    description="Training jobs and model runs (API key guarded)")
    blp.before_request(require_api_key)

    @blp.route("/train", methods=["POST"])
    @blp.response(202, TrainJobSchema)
    @blp.alt_response(401, response="UNAUTHORIZED")
    @blp.alt_response(409, response="CONFLICT",
                      description="No events stored yet, or a training job is running")
    @blp.doc(security=SECURITY)
    def train() -> tuple[dict[str, Any], int, dict[str, str]]:
        """Start training every enabled plugin on all stored events, in the background.

        Answers 202 with the job; poll ``Location`` for its status. When it succeeds,
        its run is active and served by every process (this one at once).
        """
        sdk = current_sdk()
        if sdk.store.count_events() == 0:  # an empty model would replace a good one
            fail(409, "No events are stored yet, so there is nothing to train on; "
                      "post some to /api/v1/events first.")
        try:
            job_id = sdk.start_training()
        except TrainingBusy as exc:
            fail(409, f"{exc}.")
        job = sdk.jobs.get(job_id)
        return job, 202, {"Location": url_for(".job", job_id=job_id)}

    @blp.route("/jobs/<job_id>", methods=["GET"])
    @blp.response(200, TrainJobSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.doc(security=SECURITY)
    def job(job_id: str) -> dict[str, Any]:
        """A training job's status, and its report once it succeeded."""
        found = current_sdk().jobs.get(job_id)
        if found is None:
            fail(404, f"No training job {job_id!r} in this process (jobs are kept in "
                      "the process that started them, the newest 100).")
        return found

    @blp.route("/models", methods=["GET"])
    @blp.response(200, ModelRunSchema(many=True))
    @blp.doc(security=SECURITY)
    def models() -> list[dict[str, Any]]:
        """Training runs, newest first; ``active`` marks the one being served."""
        return [r.to_dict() for r in current_sdk().registry.list_runs()]

    @blp.route("/models/<run_id>/activate", methods=["POST"])
    @blp.response(200, ModelRunSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.doc(security=SECURITY)
    def activate(run_id: str) -> dict[str, Any]:
        """Make a ready run the active one (a rollback); served here at once."""
        sdk = current_sdk()
        try:
            run = sdk.registry.activate(run_id)
        except UnknownRun as exc:
            fail(404, str(exc))
        sdk.load_models(run.id)
        return sdk.registry.get(run.id).to_dict()

    @blp.route("/experiments", methods=["GET"])
    @blp.response(200, ExperimentSummarySchema(many=True))
    @blp.doc(security=SECURITY)
    def experiments() -> list[dict[str, Any]]:
        """Declared A/B experiments, as ``recsdk experiments list --json`` prints them."""
        now = datetime.now(UTC)
        return [e.summary(now) for e in current_sdk().settings.experiments]

    @blp.route("/experiments/<name>/report", methods=["GET"])
    @blp.arguments(ReportQuery(), location="query", as_kwargs=True)
    @blp.response(200, ExperimentReportSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.doc(security=SECURITY)
    def experiment_report(name: str, attribution_days: float) -> Response:
        """An experiment's report, as ``recsdk experiments report NAME --format json``."""
        from recsdk.experiments.report import experiment_report as build_report

        result = build_report(current_sdk().store, _configured(name),
                              attribution_days=attribution_days)
        return jsonify(result.to_dict())  # already JSON-shaped: sent as it is

    @blp.route("/experiments/<name>/report.html", methods=["GET"])
    @blp.arguments(ReportQuery(), location="query", as_kwargs=True)
    @blp.doc(responses={"200": {"description": "one self-contained HTML page (plots "
                                               "embedded as PNG, no script)",
                                "content": {"text/html": {"schema": {"type": "string"}}}}})
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.doc(security=SECURITY)
    def experiment_report_html(name: str, attribution_days: float) -> Response:
        """An experiment's report with its cumulative lift over time, as an HTML page.

        The page ``recsdk experiments report NAME --format html`` writes: the report
        evaluated at up to 60 cuts since the first exposure, so it takes longer than
        the JSON report.
        """
        from recsdk.experiments.html import render_html
        from recsdk.experiments.report import experiment_report as build_report
        from recsdk.experiments.timeseries import cumulative_series

        experiment = _configured(name)
        store = current_sdk().store
        now = datetime.now(UTC)  # the report and its series end at the same time
        result = build_report(store, experiment, now=now, attribution_days=attribution_days)
        series = cumulative_series(store, experiment, now=now, attribution_days=attribution_days)
        return Response(render_html(result, series), mimetype="text/html")

    return blp


def _configured(name: str) -> ExperimentSettings:
    """The experiment called ``name``; a 404 listing the configured ones otherwise."""
    configured = {e.name: e for e in current_sdk().settings.experiments}
    if name not in configured:
        known = ", ".join(sorted(configured)) or "none configured"
        fail(404, f"Unknown experiment {name!r}; experiments: {known}.")
    return configured[name]
