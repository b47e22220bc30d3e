"""Training jobs and model runs over the admin API."""

from __future__ import annotations

from flask.testing import FlaskClient

from recsdk import RecSDK
from tests.api.helpers import train_over_http

EVENTS = [{"user_id": f"u{n}", "item_id": f"i{n % 4}", "type": "view"} for n in range(12)]


def test_training_is_a_background_job_whose_run_is_served(client: FlaskClient,
                                                           sdk: RecSDK) -> None:
    client.post("/api/v1/events", json=EVENTS)
    job = train_over_http(client)
    assert job["status"] == "succeeded" and job["error"] is None
    run_id = job["result"]["run_id"]
    answer = client.get("/api/v1/recommendations?user_id=u1&k=2").get_json()
    assert answer["model_run"] == run_id == sdk.model_run
    assert client.get("/api/v1/admin/jobs/nope").status_code == 404


def test_runs_are_listed_and_an_older_one_activated(client: FlaskClient, sdk: RecSDK) -> None:
    client.post("/api/v1/events", json=EVENTS)
    old = train_over_http(client)["result"]["run_id"]
    new = train_over_http(client)["result"]["run_id"]
    runs = client.get("/api/v1/admin/models").get_json()
    assert [(r["id"], r["active"]) for r in runs] == [(new, True), (old, False)]
    rolled = client.post(f"/api/v1/admin/models/{old}/activate")
    assert rolled.status_code == 200 and rolled.get_json()["active"] is True
    answer = client.get("/api/v1/recommendations?user_id=u1&k=2").get_json()
    assert answer["model_run"] == old
    missing = client.post("/api/v1/admin/models/0123456789/activate")
    assert missing.status_code == 404
    assert "no model run" in missing.get_json()["message"]
