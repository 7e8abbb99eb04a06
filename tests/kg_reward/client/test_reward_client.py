"""Behaviour of RewardClient and AsyncRewardClient against a MockTransport fake service.

Each test runs once per client (ids ``sync`` and ``async``) through ``run_score``.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import time

import httpx
import pytest

from kg_reward.client import (
    AsyncRewardClient,
    BadResponseError,
    ClientSettings,
    RetryPolicy,
    RewardClient,
    ServiceUnavailableError,
    _WarningLimiter,
)
from kg_schema.scoring import ScoreOptions, Weights

A = "http://replica-a:8000"
B = "http://replica-b:8000"


def test_score_returns_rewards_in_order(run_score, fake_service, make_items):
    result = run_score(A, make_items(5))

    assert result.rewards == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert result.components[0] is not None
    assert result.components[0].entity == 0.5
    assert result.failed_count == 0
    assert len(fake_service.requests) == 1


def test_score_retries_503_then_succeeds(
    run_score, fake_service, recorded_waits, make_items, fast_retry
):
    fake_service.scripts["replica-a"] = [503]

    result = run_score(A, make_items(2))

    assert result.rewards == [0.0, 1.0]
    assert len(fake_service.requests) == 2
    assert recorded_waits == [fast_retry.backoff_initial]


def test_score_retries_connect_error(run_score, fake_service, recorded_waits, make_items):
    fake_service.scripts["replica-a"] = [httpx.ConnectError, httpx.ReadTimeout]

    result = run_score(A, make_items(2))

    assert result.rewards == [0.0, 1.0]
    assert len(fake_service.requests) == 3


def test_score_backoff_doubles_and_is_capped(run_score, fake_service, recorded_waits, make_items):
    fake_service.always["replica-a"] = 500
    retry = RetryPolicy(max_attempts=4, backoff_initial=0.01, backoff_max=0.03, jitter=0.0)

    run_score(A, make_items(1), retry=retry)

    assert recorded_waits == [0.01, 0.02, 0.03]


def test_score_does_not_retry_422(run_score, fake_service, recorded_waits, make_items):
    fake_service.scripts["replica-a"] = [422]

    result = run_score(A, make_items(1))

    assert result.rewards == [None]
    assert len(fake_service.requests) == 1
    assert isinstance(result.errors[0], BadResponseError)
    assert result.errors[0].status_code == 422


def test_score_honours_retry_after(run_score, fake_service, recorded_waits, make_items):
    fake_service.scripts["replica-a"] = [(429, {"Retry-After": "2"})]

    result = run_score(A, make_items(1))

    assert result.rewards == [0.0]
    assert recorded_waits == [2.0]


def test_score_caps_retry_after(run_score, fake_service, recorded_waits, make_items, fast_retry):
    fake_service.scripts["replica-a"] = [(503, {"Retry-After": "3600"})]

    run_score(A, make_items(1))

    assert recorded_waits == [fast_retry.retry_after_max]


def test_score_gives_up_after_max_attempts(
    run_score, fake_service, recorded_waits, make_items, fast_retry
):
    fake_service.always["replica-a"] = 502

    result = run_score(A, make_items(2))

    assert result.rewards == [None, None]
    assert len(fake_service.requests) == fast_retry.max_attempts
    assert isinstance(result.errors[1], ServiceUnavailableError)


def test_score_splits_across_replicas_in_order(run_score, fake_service, make_items):
    result = run_score([A, B], make_items(10))

    assert result.rewards == [float(index) for index in range(10)]
    assert sorted(fake_service.hosts()) == ["replica-a", "replica-b"]
    assert [len(body["items"]) for body in fake_service.bodies()] == [5, 5]


def test_score_chunks_by_max_items(run_score, fake_service, make_items):
    result = run_score(A, make_items(10), max_items_per_request=3)

    assert result.rewards == [float(index) for index in range(10)]
    assert sorted(len(body["items"]) for body in fake_service.bodies()) == [1, 3, 3, 3]


def test_score_moves_dead_replica_chunk(run_score, fake_service, recorded_waits, make_items):
    fake_service.always["replica-b"] = httpx.ConnectError

    result = run_score([A, B], make_items(6))

    assert result.rewards == [float(index) for index in range(6)]
    assert fake_service.hosts().count("replica-a") == 2
    assert fake_service.hosts().count("replica-b") == 1
    assert recorded_waits == []


def test_score_returns_none_and_warns_when_all_fail(
    run_score, fake_service, recorded_waits, caplog, make_items
):
    fake_service.always.update({"replica-a": httpx.ConnectError, "replica-b": 503})

    with caplog.at_level(logging.WARNING, logger="kg_reward.client"):
        result = run_score([A, B], make_items(4))

    assert result.rewards == [None] * 4
    assert result.components == [None] * 4
    warnings = [
        record.getMessage() for record in caplog.records if record.levelno == logging.WARNING
    ]
    assert len(warnings) >= 1
    assert "2 items get reward None" in warnings[0]
    assert "ServiceUnavailableError" in warnings[0]
    assert "item-" in warnings[0]


def test_score_counts_repeated_warnings(
    run_score, fake_service, recorded_waits, caplog, make_items
):
    fake_service.always["replica-a"] = 500

    with caplog.at_level(logging.WARNING, logger="kg_reward.client"):
        run_score(A, make_items(6), max_items_per_request=2)

    warnings = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1


def test_score_raise_on_error_raises_unavailable(
    run_score, fake_service, recorded_waits, make_items
):
    fake_service.always["replica-a"] = httpx.ConnectError

    with pytest.raises(ServiceUnavailableError):
        run_score(A, make_items(2), raise_on_error=True)


def test_score_raise_on_error_raises_bad_response(run_score, fake_service, make_items):
    fake_service.scripts["replica-a"] = [422]

    with pytest.raises(BadResponseError):
        run_score(A, make_items(2), raise_on_error=True)


def test_score_rejects_wrong_reward_count(run_score, fake_service, monkeypatch, make_items):
    monkeypatch.setattr(
        fake_service,
        "handler",
        lambda request: httpx.Response(200, json={"rewards": [1.0], "components": [{}]}),
    )

    with pytest.raises(BadResponseError, match="1 rewards"):
        run_score(A, make_items(2), raise_on_error=True)


def test_score_rejects_non_contract_body(run_score, fake_service, monkeypatch, make_items):
    monkeypatch.setattr(
        fake_service, "handler", lambda request: httpx.Response(200, text="<html>proxy</html>")
    )

    result = run_score(A, make_items(1))

    assert result.rewards == [None]
    assert isinstance(result.errors[0], BadResponseError)


def test_score_sends_bearer_token(run_score, fake_service, make_items):
    run_score(A, make_items(1), token="s3cret")

    assert fake_service.requests[0].headers["Authorization"] == "Bearer s3cret"


def test_score_omits_token_header_by_default(run_score, fake_service, make_items):
    run_score(A, make_items(1))

    assert "Authorization" not in fake_service.requests[0].headers


def test_score_sends_weights_and_options(run_score, fake_service, make_items):
    run_score(A, make_items(1), weights=Weights(entity=2.0), options=ScoreOptions(preset="chexpo"))

    body = fake_service.bodies()[0]
    assert body["weights"]["entity"] == 2.0
    assert body["options"]["metric"] == "jaccard"
    assert body["options"]["preset"] == "chexpo"


def test_score_invalid_item_gets_none(run_score, fake_service, make_items):
    items = make_items(3)
    del items[1]["completion"]

    result = run_score(A, items)

    assert result.rewards == [0.0, None, 2.0]
    assert len(fake_service.bodies()[0]["items"]) == 2


def test_score_lone_surrogate_item_gets_none(run_score, fake_service, make_items, caplog):
    items = make_items(3)
    items[1]["completion"] = "\ud800 effusion"

    with caplog.at_level(logging.WARNING, logger="kg_reward.client"):
        result = run_score(A, items)

    assert result.rewards == [0.0, None, 2.0]
    assert "item #1 is invalid" in caplog.text
    assert "lone UTF-16 surrogate" in caplog.text


def test_score_sends_only_fields_set(run_score, fake_service, make_items):
    run_score(A, make_items(1), weights=Weights(answer=2.0), options=ScoreOptions(explain=True))

    body = fake_service.bodies()[0]
    assert body["weights"] == {"answer": 2.0}
    assert body["options"] == {"explain": True}


def test_score_empty_batch_sends_nothing(run_score, fake_service):
    result = run_score(A, [])

    assert result.rewards == []
    assert fake_service.requests == []


def test_client_rejects_url_without_scheme():
    with pytest.raises(ValueError, match="http://"):
        RewardClient("replica-a:8000")


def test_client_settings_read_environment(monkeypatch):
    monkeypatch.setenv("KG_REWARD_CLIENT_URLS", "http://a:1, http://b:2")
    monkeypatch.setenv("KG_REWARD_CLIENT_READ_TIMEOUT", "7.5")
    monkeypatch.setenv("KG_REWARD_CLIENT_MAX_ATTEMPTS", "2")

    settings = ClientSettings()

    assert settings.urls == ["http://a:1", "http://b:2"]
    assert settings.timeout().read == 7.5
    assert settings.retry().max_attempts == 2


def test_client_from_settings_uses_urls():
    settings = ClientSettings(urls=["http://a:1/", "http://b:2"], token="t")

    with RewardClient.from_settings(settings) as client:
        assert client.urls == ["http://a:1", "http://b:2"]


def test_client_import_skips_spacy_and_torch():
    code = (
        "import sys, kg_reward.client, kg_reward.integrations.trl, kg_reward.integrations.verl;"
        "print(sorted(m for m in ('spacy', 'torch', 'trl', 'transformers') if m in sys.modules))"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )

    assert output.stdout.strip() == "[]"


def test_warning_limiter_counts_left_out_lines(caplog):
    limiter = _WarningLimiter(interval=0.05)

    with caplog.at_level(logging.WARNING, logger="kg_reward.client"):
        for _ in range(3):
            limiter.log(logging.WARNING, "same-cause", "replica %s failed", "a")
        time.sleep(0.06)
        limiter.log(logging.WARNING, "same-cause", "replica %s failed", "a")

    messages = [record.getMessage() for record in caplog.records]
    assert messages[0] == "replica a failed"
    assert len(messages) == 2
    assert "2 similar messages left out" in messages[1]


@pytest.mark.parametrize("status", [413, 422])
def test_score_isolates_rejected_item(run_score, fake_service, monkeypatch, make_items, status):
    score_normally = fake_service.handler

    def reject_marked_item(request):
        if b"REJECT" in request.content:
            fake_service.requests.append(request)
            return httpx.Response(status, json={"detail": "items[2].completion is too long"})
        return score_normally(request)

    monkeypatch.setattr(fake_service, "handler", reject_marked_item)
    items = make_items(8)
    items[2]["completion"] = "REJECT 2"

    result = run_score(A, items)

    assert result.rewards == [0.0, 1.0, None, 3.0, 4.0, 5.0, 6.0, 7.0]
    assert isinstance(result.errors[2], BadResponseError)
    assert len(fake_service.requests) == 7


def test_client_tries_unreachable_replica_last(fake_service, make_items, fast_retry):
    fake_service.always["replica-b"] = httpx.ConnectError
    transport = httpx.MockTransport(fake_service.handler)

    with RewardClient([A, B], transport=transport, retry=fast_retry) as client:
        first = client.score(make_items(4))
        second = client.score(make_items(4))

    assert first.failed_count == 0
    assert second.failed_count == 0
    assert fake_service.hosts().count("replica-b") == 1


def test_async_client_tries_unreachable_replica_last(fake_service, make_items, fast_retry):
    fake_service.always["replica-b"] = httpx.ConnectError
    transport = httpx.MockTransport(fake_service.handler)

    async def score_twice():
        async with AsyncRewardClient([A, B], transport=transport, retry=fast_retry) as client:
            await client.score(make_items(4))
            return await client.score(make_items(4))

    assert asyncio.run(score_twice()).failed_count == 0
    assert fake_service.hosts().count("replica-b") == 1


def test_client_retries_replica_after_cooldown(fake_service, make_items, fast_retry):
    fake_service.scripts["replica-b"] = [httpx.ConnectError]
    transport = httpx.MockTransport(fake_service.handler)

    with RewardClient([A, B], transport=transport, retry=fast_retry, replica_cooldown=0) as client:
        client.score(make_items(4))
        client.score(make_items(4))

    assert fake_service.hosts().count("replica-b") == 2
