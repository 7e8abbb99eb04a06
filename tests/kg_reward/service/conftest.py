"""Fixtures of the service tests: in-process apps built on the shared pipeline.

In-process apps (``make_client``) run the real pipeline (the session ``extractor`` of
``tests/kg_reward/conftest.py``) through ``fastapi.testclient``; the tests marked slow use
the real ``kg-reward serve`` from ``tests/conftest.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from kg_reward.extraction import Extractor
from kg_reward.scoring import RewardScorer
from kg_reward.service.app import create_app
from kg_reward.service.settings import Settings

REFERENCE = (
    "<think>There is a small left pleural effusion. No pneumothorax. The heart size is "
    "normal.</think><answer>yes</answer>"
)
GOOD = (
    "<think>Small left pleural effusion is seen. There is no pneumothorax and the heart "
    "size is normal.</think><answer>Yes</answer>"
)
BAD = "<think>The lungs are clear. Cardiomegaly is present.</think><answer>no</answer>"


@pytest.fixture
def make_client(extractor: Extractor) -> Iterator[Callable[..., TestClient]]:
    """Return ``make(**settings)``: a TestClient of a fresh app with a fresh scorer."""
    clients: list[TestClient] = []

    def make(**settings: Any) -> TestClient:
        config = Settings(**settings)
        scorer = RewardScorer(extractor, cache_size=config.cache_size)
        client = TestClient(create_app(config, scorer=scorer), raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client()


def item(completion: str = GOOD, reference: str = REFERENCE, **extra: Any) -> dict[str, Any]:
    return {"completion": completion, "reference": reference, **extra}


@pytest.fixture(name="item")
def item_fixture() -> Callable[..., dict[str, Any]]:
    return item


@pytest.fixture
def samples() -> dict[str, str]:
    """A reference, a completion that agrees with it (good) and one that does not (bad)."""
    return {"reference": REFERENCE, "good": GOOD, "bad": BAD}
