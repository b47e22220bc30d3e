"""Endpoints for load balancers and monitoring: ``/healthz`` and ``/metrics``."""

from __future__ import annotations

import logging
from typing import Any

from flask import Response
from flask_smorest import Blueprint
from prometheus_client import CONTENT_TYPE_LATEST

from recsdk.api.extension import current_sdk
from recsdk.api.schemas import HealthSchema

log = logging.getLogger(__name__)


def make_ops_blueprint() -> Blueprint:
    blp = Blueprint("ops", __name__, description="Health and metrics (open)")

    @blp.route("/healthz", methods=["GET"])
    @blp.response(200, HealthSchema)
    @blp.alt_response(503, schema=HealthSchema, description="The database is unreachable")
    def healthz() -> tuple[dict[str, Any], int]:
        """Whether the database answers, which cache serves (a cache is optional), and
        each plugin's circuit breaker (an open one degrades answers, it does not stop
        them: the status says degraded and stays 200)."""
        sdk = current_sdk()
        cache = {"backend": sdk.cache.name,
                 "available": bool(getattr(sdk.cache, "available", True))}
        database: dict[str, Any] = {"dialect": sdk.store.dialect}
        try:
            sdk.store.ping()
            database["status"] = "ok"
        except Exception as exc:  # any failure to reach it means the same: not ready
            log.warning("health check: database unreachable: %s", exc)
            database.update(status="unreachable", error=type(exc).__name__)
        healthy = database["status"] == "ok"
        plugins = sdk.plugins.isolation_health()
        tripped = any(p["breaker"] != "closed" for p in plugins.values())
        status = "unavailable" if not healthy else "degraded" if tripped else "ok"
        answer = {"status": status, "database": database, "cache": cache,
                  "plugins": plugins, "trained": sdk.trained, "model_run": sdk.model_run}
        return answer, 200 if healthy else 503

    @blp.route("/metrics", methods=["GET"])
    @blp.doc(responses={"200": {"description": "Prometheus text exposition format",
                                "content": {"text/plain": {"schema": {"type": "string"}}}}})
    def metrics() -> Response:
        """The SDK's counters and latency histograms, for Prometheus to scrape."""
        return Response(current_sdk().telemetry.render(), content_type=CONTENT_TYPE_LATEST)

    return blp
