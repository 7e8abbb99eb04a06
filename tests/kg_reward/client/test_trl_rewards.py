"""TRL reward functions of kg_reward.integrations.trl, against a MockTransport fake service.

The async functions are awaited the way TRL 1.16 does it: all of them under one
``asyncio.gather`` with the same keyword arguments.
"""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from kg_reward.client import AsyncRewardClient, RewardClient
from kg_reward.integrations.trl import (
    completion_text,
    make_reward_functions,
    reward_weights,
)
from kg_schema.scoring import Weights

URL = "http://replica-a:8000"


def trl_kwargs(completions: list[Any], **columns: list[Any]) -> dict[str, Any]:
    """Keyword arguments as GRPOTrainer._calculate_rewards passes them."""
    references = columns.pop("reference", ["<answer>yes</answer>"] * len(completions))
    return {
        "prompts": ["Is there an effusion?"] * len(completions),
        "completions": completions,
        "completion_ids": [[1, 2, 3]] * len(completions),
        "reference": references,
        "trainer_state": SimpleNamespace(global_step=7),
        "log_extra": lambda *args, **kwargs: None,
        "log_metric": lambda *args, **kwargs: None,
        **columns,
    }


def call_like_trl(functions: list[Any], kwargs: dict[str, Any]) -> list[list[float | None]]:
    async def gather() -> list[list[float | None]]:
        return await asyncio.gather(*(function(**kwargs) for function in functions))

    return asyncio.run(gather())


@pytest.fixture
def async_functions(fake_service, fast_retry):
    client = AsyncRewardClient(
        URL, transport=httpx.MockTransport(fake_service.handler), retry=fast_retry
    )
    return make_reward_functions(client)


def test_reward_functions_named_by_component(async_functions):
    assert [function.__name__ for function in async_functions] == ["answer", "entity", "relation"]


def test_reward_functions_share_one_request(async_functions, fake_service):
    kwargs = trl_kwargs(["<answer>yes</answer> 3", "<answer>no</answer> 4"])

    answer, entity, relation = call_like_trl(async_functions, kwargs)

    assert len(fake_service.requests) == 1
    assert answer == [1.0, 1.0]
    assert entity == [0.5, 0.5]
    assert relation == [0.25, 0.25]


def test_reward_functions_sync_share_one_request(fake_service, fast_retry):
    client = RewardClient(
        URL, transport=httpx.MockTransport(fake_service.handler), retry=fast_retry
    )
    functions = make_reward_functions(client)
    kwargs = trl_kwargs(["<answer>yes</answer> 1"])

    values = [function(**kwargs) for function in functions]

    assert len(fake_service.requests) == 1
    assert values == [[1.0], [0.5], [0.25]]


def test_reward_functions_read_chat_completions(async_functions, fake_service):
    completions = [
        [{"role": "assistant", "content": "<think>clear</think><answer>no</answer>"}],
        [{"role": "assistant", "content": [{"type": "text", "text": "<answer>yes</answer>"}]}],
    ]

    call_like_trl(async_functions, trl_kwargs(completions))

    sent = [item["completion"] for item in fake_service.bodies()[0]["items"]]
    assert sent == ["<think>clear</think><answer>no</answer>", "<answer>yes</answer>"]


def test_reward_functions_read_dataset_columns(fake_service, fast_retry):
    client = AsyncRewardClient(
        URL, transport=httpx.MockTransport(fake_service.handler), retry=fast_retry
    )
    functions = make_reward_functions(
        client, reference_column="rationale", answer_column="gold_answer"
    )
    kwargs = trl_kwargs(
        ["<answer>yes</answer>"],
        reference=["unused"],
        rationale=["Small left effusion."],
        gold_answer=["yes"],
    )

    call_like_trl(functions, kwargs)

    item = fake_service.bodies()[0]["items"][0]
    assert item["reference"] == "Small left effusion."
    assert item["reference_answer"] == "yes"
    assert item["id"] == "step7-0"


def test_reward_functions_return_none_on_failure(async_functions, fake_service, recorded_waits):
    fake_service.always["replica-a"] = 503

    values = call_like_trl(async_functions, trl_kwargs(["a", "b"]))

    assert values == [[None, None]] * 3
    assert len(fake_service.requests) == 3  # one chunk, fast_retry.max_attempts


def test_reward_functions_rescore_new_batch(async_functions, fake_service):
    call_like_trl(async_functions, trl_kwargs(["<answer>yes</answer> 1"]))
    answer, _, _ = call_like_trl(async_functions, trl_kwargs(["<answer>no</answer> 2"]))

    assert len(fake_service.requests) == 2
    second = fake_service.bodies()[1]["items"][0]["completion"]
    assert second == "<answer>no</answer> 2"


def test_reward_functions_rescore_repeated_batch(async_functions, fake_service):
    kwargs = trl_kwargs(["<answer>yes</answer> 1"])

    call_like_trl(async_functions, kwargs)
    call_like_trl(async_functions, kwargs)

    assert len(fake_service.requests) == 2


def test_reward_functions_missing_reference_column(async_functions):
    kwargs = trl_kwargs(["x"])
    del kwargs["reference"]

    with pytest.raises(ValueError, match="reference"):
        call_like_trl(async_functions, kwargs)


def test_reward_functions_total_reward_component(fake_service, fast_retry):
    client = RewardClient(
        URL, transport=httpx.MockTransport(fake_service.handler), retry=fast_retry
    )
    (total,) = make_reward_functions(client, components=("reward",), weights=Weights(answer=2))

    assert total(**trl_kwargs(["<answer>yes</answer> 9"])) == [9.0]
    assert json.loads(fake_service.requests[0].content)["weights"]["answer"] == 2.0


def test_reward_functions_reject_unknown_component():
    with pytest.raises(ValueError, match="components"):
        make_reward_functions(URL, components=("answer", "fluency"))


def test_reward_weights_defaults():
    assert reward_weights() == [1.0, 0.5, 0.5]


def test_reward_weights_follow_weights():
    weights = Weights(answer=1.0, entity=0.8, relation=0.2)

    assert reward_weights(("relation", "answer"), weights) == [0.2, 1.0]


def test_completion_text_skips_other_roles():
    messages = [
        {"role": "assistant", "content": "<think>a</think>"},
        {"role": "tool", "content": "tool output"},
        {"role": "assistant", "content": "<answer>b</answer>"},
    ]

    assert completion_text(messages) == "<think>a</think>\n<answer>b</answer>"


def test_reward_functions_recognised_by_trl(async_functions):
    trl_utils = pytest.importorskip("trl.trainer.utils")

    names = [trl_utils.get_callable_name(function) for function in async_functions]

    assert names == ["answer", "entity", "relation"]
    assert all(trl_utils.is_async_callable(function) for function in async_functions)
