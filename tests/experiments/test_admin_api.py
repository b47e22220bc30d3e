"""The experiments' admin API: the list and the report, guarded by the API key."""

from __future__ import annotations

from pathlib import Path

from recsdk import RecSDK
from recsdk.api import create_app
from tests.experiments.test_serving import events, settings

KEY = {"X-API-Key": "secret"}


def test_list_and_report_over_http(tmp_path: Path) -> None:
    config = {**settings(tmp_path), "api": {"api_key": "secret"}}
    with RecSDK(config, environ={}) as sdk:
        sdk.upsert_items([{"id": f"i{n}", "stock": 5} for n in range(10)])
        sdk.track_many(events())
        sdk.fit()
        client = create_app(sdk).test_client()
        assert client.get("/api/v1/admin/experiments").status_code == 401
        (listed,) = client.get("/api/v1/admin/experiments", headers=KEY).get_json()
        assert listed["name"] == "home_test" and listed["running"]
        assert listed["variants"] == {"control": 0.5, "fresh": 0.5}
        empty = client.get("/api/v1/admin/experiments/home_test/report", headers=KEY)
        assert empty.status_code == 200 and "no exposures" in empty.get_json()["message"]
        for n in range(30):
            sdk.recommend(f"v{n}", placement="home", k=2)
        sdk.request_log.flush()
        body = client.get("/api/v1/admin/experiments/home_test/report?attribution_days=3",
                          headers=KEY).get_json()
        assert body["message"] is None and body["attribution_days"] == 3
        assert sum(v["counts"]["exposures"] for v in body["variants"]) == 30
        assert body["srm_p_value"] is not None
        missing = client.get("/api/v1/admin/experiments/nope/report", headers=KEY)
        assert missing.status_code == 404 and "home_test" in missing.get_json()["message"]
        bad = client.get("/api/v1/admin/experiments/home_test/report?attribution_days=-1",
                         headers=KEY)
        assert bad.status_code == 422
