"""Fixtures of the client tests: a scripted fake service behind ``httpx.MockTransport``."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

import kg_reward.client as client_module
from kg_reward.client import AsyncRewardClient, RetryPolicy, RewardClient, ScoreResult

# Short waits keep the retry tests fast; jitter 0 makes the waits exact.
FAST_RETRY = RetryPolicy(
    max_attempts=3, backoff_initial=0.01, backoff_max=0.02, jitter=0.0, retry_after_max=5.0
)

Behaviour = int | tuple[int, dict[str, str]] | type[Exception] | str


@dataclass
class FakeService:
    """Fake ``POST /score``: each host follows its script, then returns scores.

    A script entry is a status code, a (status, headers) pair, an httpx exception class to
    raise, or "ok". The reward of an item is the number at the end of its completion, so
    tests can check that results come back in item order.
    """

    scripts: dict[str, list[Behaviour]] = field(default_factory=dict)
    always: dict[str, Behaviour] = field(default_factory=dict)
    requests: list[httpx.Request] = field(default_factory=list)

    def hosts(self) -> list[str]:
        return [request.url.host for request in self.requests]

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(request.content) for request in self.requests]

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        host = request.url.host
        script = self.scripts.get(host, [])
        behaviour = script.pop(0) if script else self.always.get(host, "ok")
        if isinstance(behaviour, type) and issubclass(behaviour, Exception):
            raise behaviour("scripted failure", request=request)
        if isinstance(behaviour, int):
            return httpx.Response(behaviour, json={"detail": "scripted"})
        if isinstance(behaviour, tuple):
            status, headers = behaviour
            return httpx.Response(status, headers=headers, json={"detail": "scripted"})
        return self._scores(request)

    @staticmethod
    def _scores(request: httpx.Request) -> httpx.Response:
        items = json.loads(request.content)["items"]
        rewards = [_trailing_number(item["completion"]) for item in items]
        components = [{"answer": 1.0, "entity": 0.5, "relation": 0.25} for _ in items]
        return httpx.Response(200, json={"rewards": rewards, "components": components})


def _trailing_number(text: str) -> float:
    try:
        return float(text.split()[-1])
    except (IndexError, ValueError):
        return 0.5


def make_items(count: int) -> list[dict[str, str]]:
    return [
        {
            "id": f"item-{index}",
            "completion": f"<answer>yes</answer> {index}",
            "reference": "<answer>yes</answer>",
        }
        for index in range(count)
    ]


@pytest.fixture(name="make_items")
def make_items_fixture() -> Callable[[int], list[dict[str, str]]]:
    return make_items


@pytest.fixture
def fast_retry() -> RetryPolicy:
    return FAST_RETRY


@pytest.fixture
def fake_service() -> FakeService:
    return FakeService()


@pytest.fixture
def recorded_waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record the retry waits of both clients instead of sleeping."""
    waits: list[float] = []

    async def fake_async_sleep(seconds: float) -> None:
        waits.append(seconds)

    monkeypatch.setattr(client_module, "_sleep", waits.append)
    monkeypatch.setattr(client_module, "_async_sleep", fake_async_sleep)
    return waits


ScoreRunner = Callable[..., ScoreResult]


@pytest.fixture(params=["sync", "async"])
def run_score(request: pytest.FixtureRequest, fake_service: FakeService) -> Iterator[ScoreRunner]:
    """Return ``run(urls, items, **client_kwargs)``, scored by the sync or the async client."""

    def run(
        urls: str | list[str],
        items: list[Any],
        *,
        weights: Any = None,
        options: Any = None,
        **kwargs: Any,
    ) -> ScoreResult:
        kwargs.setdefault("retry", FAST_RETRY)
        transport = httpx.MockTransport(fake_service.handler)
        if request.param == "sync":
            with RewardClient(urls, transport=transport, **kwargs) as client:
                return client.score(items, weights=weights, options=options)

        async def score_async() -> ScoreResult:
            async with AsyncRewardClient(urls, transport=transport, **kwargs) as client:
                return await client.score(items, weights=weights, options=options)

        return asyncio.run(score_async())

    yield run
