"""verl reward functions of kg_reward.integrations.verl, against a MockTransport fake service."""

from __future__ import annotations

import math
import os

import httpx
import pytest

from kg_reward.client import RewardClient
from kg_reward.integrations import verl

URL = "http://replica-a:8000"


@pytest.fixture
def verl_client(fake_service, fast_retry, monkeypatch):
    """Install a MockTransport client as this process's client for KG_REWARD_URL."""
    client = RewardClient(
        URL, transport=httpx.MockTransport(fake_service.handler), retry=fast_retry
    )
    monkeypatch.setenv("KG_REWARD_URL", URL)
    monkeypatch.setitem(verl._clients, (os.getpid(), (URL,)), client)
    yield client
    client.close()


def test_compute_score_returns_score_dict(verl_client, fake_service):
    score = verl.compute_score(
        data_source="mimic-cxr-vqa",
        solution_str="<answer>yes</answer> 3",
        ground_truth="<think>Effusion.</think><answer>yes</answer>",
        extra_info={"reference_answer": "yes", "id": "q1"},
    )

    assert score["score"] == 3.0
    assert score["entity"] == 0.5
    assert score["kg_reward_failed"] == 0.0
    item = fake_service.bodies()[0]["items"][0]
    assert item["reference_answer"] == "yes"
    assert item["id"] == "q1"


def test_compute_score_failure_returns_fallback(
    verl_client, fake_service, recorded_waits, monkeypatch
):
    fake_service.always["replica-a"] = httpx.ConnectError
    monkeypatch.setenv("KG_REWARD_FALLBACK_SCORE", "-1")

    score = verl.compute_score("src", "<answer>yes</answer>", "<answer>yes</answer>")

    assert score["score"] == -1.0
    assert score["kg_reward_failed"] == 1.0
    assert math.isnan(score["answer"])


def test_compute_score_batch_sends_one_request(verl_client, fake_service):
    scores = verl.compute_score_batch(
        data_sources=["a", "b"],
        solution_strs=["x 1", "x 2"],
        ground_truths=[{"reference": "r1", "reference_answer": "no"}, "r2"],
        extra_infos=[None, {"index": 5}],
    )

    assert [score["score"] for score in scores] == [1.0, 2.0]
    assert len(fake_service.requests) == 1
    items = fake_service.bodies()[0]["items"]
    assert items[0]["reference_answer"] == "no"
    assert items[1]["id"] == "5"


def test_compute_score_same_keys_for_every_item(verl_client, fake_service, recorded_waits):
    fake_service.scripts["replica-a"] = [422]

    failed = verl.compute_score("a", "x", "r")
    scored = verl.compute_score("a", "x 1", "r")

    assert failed.keys() == scored.keys()


def test_get_client_reused_per_process(monkeypatch):
    monkeypatch.setenv("KG_REWARD_URL", "http://reuse-check:8000")

    first = verl.get_client()

    assert verl.get_client() is first
    first.close()
    verl._clients.pop((os.getpid(), ("http://reuse-check:8000",)))
