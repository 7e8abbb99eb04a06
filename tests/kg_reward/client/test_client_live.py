"""Clients against a real ``kg-reward serve`` on 127.0.0.1 (fixtures in tests/conftest.py)."""

from __future__ import annotations

import asyncio
import logging
import socket

import pytest

from kg_reward.client import (
    AsyncRewardClient,
    BadResponseError,
    RetryPolicy,
    RewardClient,
)
from kg_reward.integrations.trl import make_reward_functions

pytestmark = pytest.mark.slow

# Short timeouts and waits: a stopped server refuses connections at once on 127.0.0.1.
LIVE_RETRY = RetryPolicy(max_attempts=2, backoff_initial=0.05, backoff_max=0.1)
LIVE_TIMEOUT = 30.0

REFERENCE = (
    "<think>There is a small left pleural effusion. The heart size is normal.</think>"
    "<answer>yes</answer>"
)
ITEMS = [
    {"id": "same", "completion": REFERENCE, "reference": REFERENCE},
    {
        "id": "wrong",
        "completion": "<think>The lungs are clear. No effusion.</think><answer>no</answer>",
        "reference": REFERENCE,
    },
    {
        "id": "partial",
        "completion": "<think>Left pleural effusion.</think><answer>yes</answer>",
        "reference": REFERENCE,
        "reference_answer": "yes",
    },
]


def test_live_score_small_batch(reward_server_url):
    with RewardClient(reward_server_url, retry=LIVE_RETRY, timeout=LIVE_TIMEOUT) as client:
        result = client.score(ITEMS)

    assert result.failed_count == 0
    same, wrong, partial = result.components
    assert same is not None
    assert wrong is not None
    assert partial is not None
    assert same.answer == 1.0
    assert same.entity == 1.0
    assert wrong.answer == 0.0
    assert partial.answer == 1.0
    assert all(reward is not None and reward >= 0 for reward in result.rewards)
    assert result.rewards[0] > result.rewards[1]


def test_live_async_client_matches_sync(reward_server_url):
    async def score_async():
        async with AsyncRewardClient(
            reward_server_url, retry=LIVE_RETRY, timeout=LIVE_TIMEOUT
        ) as client:
            return await client.score(ITEMS)

    with RewardClient(reward_server_url, retry=LIVE_RETRY, timeout=LIVE_TIMEOUT) as client:
        expected = client.score(ITEMS).rewards

    assert asyncio.run(score_async()).rewards == expected


def test_live_trl_functions_score_batch(reward_server_url):
    functions = make_reward_functions(
        AsyncRewardClient(reward_server_url, retry=LIVE_RETRY, timeout=LIVE_TIMEOUT)
    )
    kwargs = {
        "prompts": ["Is there a pleural effusion?"] * 2,
        "completions": [
            [{"role": "assistant", "content": item["completion"]}] for item in ITEMS[:2]
        ],
        "reference": [REFERENCE] * 2,
    }

    async def gather():
        return await asyncio.gather(*(function(**kwargs) for function in functions))

    answer, entity, relation = asyncio.run(gather())

    assert answer == [1.0, 0.0]
    assert entity[0] == 1.0
    assert relation[0] is not None


def test_live_dead_replica_chunk_moves(reward_server_url):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead_url = f"http://127.0.0.1:{probe.getsockname()[1]}"

    with RewardClient(
        [dead_url, reward_server_url], retry=LIVE_RETRY, timeout=LIVE_TIMEOUT
    ) as client:
        result = client.score(ITEMS)

    assert result.failed_count == 0


def test_live_stopped_server_gives_none_then_recovers(reward_server_factory, caplog):
    server = reward_server_factory(workers=1)
    client = RewardClient(server.url, retry=LIVE_RETRY, timeout=LIVE_TIMEOUT)

    assert client.score(ITEMS[:1]).rewards[0] is not None

    server.stop()
    with caplog.at_level(logging.WARNING, logger="kg_reward.client"):
        failed = client.score(ITEMS[:1])
    assert failed.rewards == [None]
    assert any("reward None" in record.getMessage() for record in caplog.records)

    server.restart()
    assert client.score(ITEMS[:1]).rewards[0] is not None
    client.close()


def test_live_token_required(reward_server_factory):
    server = reward_server_factory(workers=1, env={"KG_REWARD_API_TOKEN": "live-token"})

    with RewardClient(server.url, token="live-token", retry=LIVE_RETRY) as client:
        assert client.score(ITEMS[:1]).failed_count == 0
    with RewardClient(server.url, retry=LIVE_RETRY, raise_on_error=True) as client:
        with pytest.raises(BadResponseError) as raised:
            client.score(ITEMS[:1])
    assert raised.value.status_code in (401, 403)


def test_live_trl_functions_on_daemon_loop(reward_server_url):
    trl_utils = pytest.importorskip("trl.trainer.utils")
    functions = make_reward_functions([reward_server_url])
    thread, loop, ready = trl_utils.start_event_loop_in_daemon(name="kg-reward-test-loop")
    ready.wait(timeout=10)

    async def gather(completions):
        kwargs = {
            "prompts": ["q"] * len(completions),
            "completions": completions,
            "reference": [REFERENCE] * len(completions),
        }
        return await asyncio.gather(*(function(**kwargs) for function in functions))

    # Two batches on the same loop, as GRPOTrainer runs one batch per step.
    try:
        first = asyncio.run_coroutine_threadsafe(gather([REFERENCE]), loop).result(timeout=60)
        second = asyncio.run_coroutine_threadsafe(gather([ITEMS[1]["completion"]]), loop).result(
            timeout=60
        )
    finally:
        trl_utils.shutdown_event_loop_in_daemon(thread, loop)

    assert first[0] == [1.0]
    assert second[0] == [0.0]
