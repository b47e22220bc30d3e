"""Operator actions over HTTP, guarded by the API key: training."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from flask_smorest import Blueprint

from recsdk.api.auth import SECURITY, require_api_key
from recsdk.api.errors import fail
from recsdk.api.extension import current_sdk, train_lock
from recsdk.api.schemas import TrainReportSchema


def make_admin_blueprint() -> Blueprint:
    blp = Blueprint("admin", __name__, url_prefix="/api/v1/admin",
                    description="Training and other operator actions (API key guarded)")
    blp.before_request(require_api_key)

    @blp.route("/train", methods=["POST"])
    @blp.response(200, TrainReportSchema)
    @blp.alt_response(401, response="UNAUTHORIZED")
    @blp.alt_response(409, response="CONFLICT",
                      description="No events stored yet, or a training run is in progress")
    @blp.doc(security=SECURITY)
    def train() -> dict[str, Any]:
        """Train every enabled plugin on all stored events; serve the new model."""
        sdk = current_sdk()
        if sdk.store.count_events() == 0:  # an empty model would replace a good one
            fail(409, "No events are stored yet, so there is nothing to train on; "
                      "post some to /api/v1/events first.")
        lock = train_lock()
        if not lock.acquire(blocking=False):
            fail(409, "A training run started over HTTP is still in progress; retry later.")
        try:
            return asdict(sdk.fit())
        finally:
            lock.release()

    return blp
