"""Health and readiness probes, metrics, request ids and the access log line."""

from __future__ import annotations

import logging

from fastapi.testclient import TestClient

from kg_reward.service.app import create_app
from kg_reward.service.settings import Settings


def test_healthz_ok(client):
    assert client.get("/healthz").json() == {"status": "ok"}


def test_readyz_ready_with_scorer(client):
    assert client.get("/readyz").status_code == 200


def test_readyz_503_before_pipeline_loads():
    # Without entering the client, the lifespan (which loads the pipeline) does not run.
    client = TestClient(create_app(Settings()))
    response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json() == {"status": "loading"}


def test_score_503_before_pipeline_loads(item):
    client = TestClient(create_app(Settings()))
    response = client.post("/score", json={"items": [item()]})

    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"


def test_request_id_echoed(client):
    response = client.get("/healthz", headers={"X-Request-ID": "trainer-step-12"})

    assert response.headers["X-Request-ID"] == "trainer-step-12"


def test_request_id_generated_when_missing(client):
    assert len(client.get("/healthz").headers["X-Request-ID"]) == 32


def test_request_id_invalid_replaced(client):
    response = client.get("/healthz", headers={"X-Request-ID": "bad id\twith tab"})

    assert response.headers["X-Request-ID"] != "bad id\twith tab"


def test_score_logs_one_line_with_batch(client, item, caplog):
    caplog.set_level(logging.INFO, logger="kg_reward")
    client.post("/score", json={"items": [item()] * 3}, headers={"X-Request-ID": "req-7"})

    lines = [r.getMessage() for r in caplog.records if r.name == "kg_reward.service.middleware"]
    assert len(lines) == 1
    assert "request_id=req-7" in lines[0]
    assert "route=/score" in lines[0]
    assert "status=200" in lines[0]
    assert "batch=3" in lines[0]
    assert "duration_ms=" in lines[0]


def test_error_logged_with_request_id(client, caplog):
    client.post("/score", json={"items": 1}, headers={"X-Request-ID": "req-8"})

    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("request_id=req-8" in line and "items" in line for line in warnings)


def test_unhandled_error_returns_500_with_request_id(client, item, caplog, monkeypatch):
    def fail(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(client.app.state.scorer, "score_batch", fail)
    response = client.post("/score", json={"items": [item()]}, headers={"X-Request-ID": "req-9"})

    assert response.status_code == 500
    assert response.headers["X-Request-ID"] == "req-9"
    assert "req-9" in response.json()["detail"]
    assert any(r.levelno == logging.ERROR and "req-9" in r.getMessage() for r in caplog.records)


def test_metrics_count_requests_items_and_cache(client, item):
    client.post("/score", json={"items": [item()] * 4})
    text = client.get("/metrics").text

    assert 'kg_reward_requests_total{route="/score",status="200"}' in text
    assert 'kg_reward_items_total{route="/score"}' in text
    assert "kg_reward_request_duration_seconds_bucket" in text
    assert "kg_reward_reference_cache_misses_total" in text
    assert "kg_reward_reference_cache_hits_total" in text


def test_metrics_count_errors(client):
    client.post("/score", json={"items": 1})

    assert 'kg_reward_errors_total{route="/score",status="422"}' in client.get("/metrics").text


def test_openapi_docs_served(client):
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/score", "/extract", "/openrlhf/reward", "/healthz", "/readyz"} <= set(paths)
