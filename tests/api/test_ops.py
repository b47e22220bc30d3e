"""The OpenAPI document, /healthz and /metrics."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from flask.testing import FlaskClient
from openapi_spec_validator import validate
from sqlalchemy import create_engine

from recsdk import RecSDK
from tests.api.helpers import train_over_http

API_PATHS = {
    "/api/v1/events": {"post"},
    "/api/v1/items": {"put"},
    "/api/v1/users": {"put"},
    "/api/v1/categories": {"put"},
    "/api/v1/feedback": {"post"},
    "/api/v1/recommendations": {"get"},
    "/api/v1/items/{item_id}/similar": {"get"},
    "/api/v1/ratings": {"get"},
    "/api/v1/admin/train": {"post"},
    "/api/v1/admin/jobs/{job_id}": {"get"},
    "/api/v1/admin/models": {"get"},
    "/api/v1/admin/models/{run_id}/activate": {"post"},
    "/api/v1/admin/experiments": {"get"},
    "/api/v1/admin/experiments/{name}/report": {"get"},
    "/api/v1/admin/experiments/{name}/report.html": {"get"},
    "/api/v1/beacon": {"post"},
    "/api/v1/r": {"get"},
    "/api/v1/widget/recommendations": {"get"},
    "/api/v1/static/recsdk.js": {"get"},
    "/api/v1/visitor-token": {"post"},
    "/healthz": {"get"},
    "/metrics": {"get"},
}


def test_the_openapi_document_lists_every_endpoint(client: FlaskClient) -> None:
    answer = client.get("/api/openapi.json")
    assert answer.status_code == 200
    doc = json.loads(answer.get_data())
    assert doc["openapi"] == "3.0.3"
    validate(doc)  # raises on anything that breaks the OpenAPI 3.0 specification
    methods = {path: set(ops) - {"parameters"} for path, ops in doc["paths"].items()}
    assert methods == API_PATHS
    similar = doc["paths"]["/api/v1/items/{item_id}/similar"]["parameters"]
    assert [(p["name"], p["in"]) for p in similar] == [("item_id", "path")]


def test_the_openapi_document_describes_bodies_security_and_errors(
        client: FlaskClient) -> None:
    doc = client.get("/api/openapi.json").get_json()
    events = doc["paths"]["/api/v1/events"]["post"]
    one_or_many = events["requestBody"]["content"]["application/json"]["schema"]["oneOf"]
    assert one_or_many[0] == {"$ref": "#/components/schemas/Event"}
    assert one_or_many[1]["items"] == {"$ref": "#/components/schemas/Event"}
    assert one_or_many[1]["maxItems"] == 10_000
    assert {"200", "201", "400", "401", "413", "415", "422", "503"} <= set(events["responses"])
    assert "Retry-After" in events["responses"]["503"]["headers"]
    event = doc["components"]["schemas"]["Event"]
    assert set(event["required"]) == {"user_id", "item_id", "type"}
    assert event["properties"]["user_id"]["anyOf"][0] == {
        "type": "string", "minLength": 1, "maxLength": 255}
    assert event["properties"]["user_id"]["anyOf"][1]["type"] == "integer"
    assert event["properties"]["timestamp"]["anyOf"][0]["format"] == "date-time"
    assert event["properties"]["value"]["type"] == "number"
    assert "16 levels" in event["properties"]["context"]["description"]
    assert event["additionalProperties"] is False
    item = doc["components"]["schemas"]["Item"]["properties"]
    assert item["title"]["maxLength"] == 1000 and item["tags"]["maxItems"] == 100
    assert item["stock"]["maximum"] == 2**31 - 1 and item["price"]["minimum"] == 0
    assert item["attributes"]["properties"]["group_id"]["anyOf"] == [
        {"type": "string"}, {"type": "number"}]
    for name in ("Item", "User", "Category", "Feedback"):
        assert name in doc["components"]["schemas"]
    assert doc["components"]["securitySchemes"]["ApiKeyHeader"]["name"] == "X-API-Key"
    assert "security" in doc["paths"]["/api/v1/admin/train"]["post"]
    assert "security" not in doc["paths"]["/api/v1/recommendations"]["get"]
    params = {p["name"] for p in doc["paths"]["/api/v1/recommendations"]["get"]["parameters"]}
    assert params == {"user_id", "session_id", "k", "placement", "variant", "cart"}


def test_health_reports_database_cache_and_model(client: FlaskClient, sdk: RecSDK) -> None:
    answer = client.get("/healthz")
    assert answer.status_code == 200
    assert answer.get_json() == {
        "status": "ok",
        "database": {"status": "ok", "dialect": "sqlite"},
        "cache": {"backend": "memory", "available": True},
        "plugins": {name: {"breaker": "closed", "consecutive_failures": 0, "in_flight": 0,
                           "max_concurrency": 16} for name in ("popularity", "filters")},
        "trained": False,
        "model_run": None,
    }
    client.post("/api/v1/events", json={"user_id": "u", "item_id": "i", "type": "view"})
    train_over_http(client)
    after = client.get("/healthz").get_json()
    assert (after["trained"], after["model_run"]) == (True, sdk.model_run)


def test_an_open_breaker_degrades_health_but_keeps_it_200(client: FlaskClient,
                                                          sdk: RecSDK) -> None:
    breaker = sdk.plugins.runner.breaker("filters")
    for _ in range(breaker.failures):
        breaker.failed(breaker.admit())
    answer = client.get("/healthz")
    assert answer.status_code == 200
    body = answer.get_json()
    assert body["status"] == "degraded"
    assert body["plugins"]["filters"]["breaker"] == "open"
    assert 0 < body["plugins"]["filters"]["retry_in_s"] <= 30
    assert body["plugins"]["popularity"]["breaker"] == "closed"
    text = client.get("/metrics").get_data(as_text=True)
    assert 'recsdk_plugin_breaker_state{plugin="filters"} 2.0' in text
    assert 'recsdk_plugin_breaker_state{plugin="popularity"} 0.0' in text


def test_metrics_are_prometheus_text(client: FlaskClient) -> None:
    client.get("/api/v1/recommendations?user_id=u1&placement=home")
    answer = client.get("/metrics")
    assert answer.status_code == 200
    assert answer.content_type.startswith("text/plain")
    text = answer.get_data(as_text=True)
    assert "# TYPE recsdk_recommend_seconds histogram" in text
    # the client's SDK is untrained, so the answer is counted as degraded
    assert ('recsdk_recommendations_total{outcome="degraded",placement="home",'
            'variant="default"} 1.0' in text)


def test_metrics_show_model_staleness_and_event_mix_drift(client: FlaskClient,
                                                          sdk: RecSDK) -> None:
    events = [{"user_id": f"u{n}", "item_id": f"i{n % 3}", "type": "view"} for n in range(6)]
    assert client.post("/api/v1/events", json=events).status_code in (200, 201)
    before = client.get("/metrics").get_data(as_text=True)
    assert not re.search(r"^recsdk_model_age_seconds ", before, re.M)  # nothing trained
    assert "recsdk_model_events_since_training 6.0" in before
    train_over_http(client)
    sdk.monitoring_gauges.staleness.ttl_s = 0  # the scrape above cached the untrained state
    text = client.get("/metrics").get_data(as_text=True)
    age = float(re.search(r"^recsdk_model_age_seconds (\S+)$", text, re.M).group(1))
    assert 0 <= age < 600
    assert "recsdk_model_events_since_training 0.0" in text
    assert 'recsdk_event_mix_events{window="recent"} 6.0' in text
    assert 'recsdk_monitoring_read_ok{read="event_mix_drift"} 1.0' in text


def test_metrics_survive_a_broken_database(client: FlaskClient, sdk: RecSDK, tmp_path: Any,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    broken = create_engine(f"sqlite:///{tmp_path / 'gone' / 'no.db'}")
    monkeypatch.setattr(sdk.store, "engine", broken)
    monkeypatch.setattr(sdk.registry, "engine", broken)
    client.get("/api/v1/recommendations?user_id=u1&placement=home")
    answer = client.get("/metrics")
    assert answer.status_code == 200
    text = answer.get_data(as_text=True)
    assert 'recsdk_monitoring_read_ok{read="model_staleness"} 0.0' in text
    assert 'recsdk_monitoring_read_ok{read="event_mix_drift"} 0.0' in text
    assert not re.search(r"^recsdk_model_events_since_training ", text, re.M)
    assert "# TYPE recsdk_recommend_seconds histogram" in text  # the rest is all there
    assert client.get("/healthz").status_code == 503


def test_unknown_paths_and_methods_answer_json(client: FlaskClient) -> None:
    missing = client.get("/api/v1/nothing")
    assert missing.status_code == 404
    assert missing.get_json()["code"] == 404
    wrong = client.get("/api/v1/events")
    assert wrong.status_code == 405
    assert wrong.get_json()["status"] == "Method Not Allowed"


def test_the_openapi_document_describes_the_capture_endpoints(client: FlaskClient) -> None:
    doc = client.get("/api/openapi.json").get_json()
    beacon = doc["paths"]["/api/v1/beacon"]["post"]
    assert set(beacon["requestBody"]["content"]) == {"application/json", "text/plain"}
    assert beacon["security"] == []  # pages call it: no API key
    assert {"200", "400", "413", "415", "429"} <= set(beacon["responses"])
    assert "Retry-After" in beacon["responses"]["429"]["headers"]
    event = doc["components"]["schemas"]["BeaconEvent"]
    assert set(event["required"]) == {"token", "type", "item_id", "position"}
    assert event["properties"]["type"]["enum"] == [
        "impression", "click", "add_to_cart", "purchase", "not_interested", "rating"]
    redirect = doc["paths"]["/api/v1/r"]["get"]["responses"]
    assert "Location" in redirect["302"]["headers"] and "400" in redirect
    script = doc["paths"]["/api/v1/static/recsdk.js"]["get"]["responses"]["200"]
    assert set(script["content"]) == {"text/javascript"}
    assert "security" in doc["paths"]["/api/v1/visitor-token"]["post"]
    widget = doc["paths"]["/api/v1/widget/recommendations"]["get"]
    assert {p["name"] for p in widget["parameters"]} == {
        "placement", "k", "item_id", "visitor", "cart"}  # no user_id: never another's list
    token = doc["components"]["schemas"]["Recommendation"]["properties"]["token"]
    assert "beacon" in token["description"]
