"""Reward functions for TRL's ``GRPOTrainer``, scored by the kg_reward service.

Usage::

    from kg_reward.integrations.trl import make_reward_functions, reward_weights

    reward_funcs = make_reward_functions(["http://rm-0:8000", "http://rm-1:8000"])
    args = GRPOConfig(..., reward_weights=reward_weights())  # [1.0, 0.5, 0.5]
    trainer = GRPOTrainer(model=..., args=args, reward_funcs=reward_funcs, train_dataset=ds)

The dataset needs a ``reference`` column (the reference rationale) and may have a
``reference_answer`` column. The functions are named ``answer``, ``entity`` and
``relation``, so TRL logs ``rewards/answer/mean`` and so on. TRL forms the total reward
as ``sum(reward_weights[i] * component_i)``, which matches the service's R = w1*R_ans +
w2*R_ent + w3*R_rel when ``reward_weights`` comes from ``reward_weights()``. The three
functions share one ``POST /score`` per batch: the first one called sends it and its
siblings reuse that result.

How TRL 1.16 calls reward functions (``trl/trainer/grpo_trainer.py``,
``GRPOTrainer._calculate_rewards``, lines 1579-1681):

- Keyword arguments: ``prompts``, ``completions``, ``completion_ids``, every dataset column
  except prompt/completion/completion_ids as a list with one value per completion,
  ``trainer_state``, ``log_extra`` and ``log_metric``.
- ``completions`` contains strings, or lists of message dicts for conversational datasets.
- A reward function is async when it or its ``__call__`` is a coroutine function
  (``trl/trainer/utils.py``, ``is_async_callable``, line 247). The sync ones run first, one
  after the other. Then all async ones of the batch run concurrently under
  ``asyncio.gather`` on one daemon event loop that lives as long as the trainer (lines
  749-758 and 1639-1662). So the functions made from URLs are async and their HTTP
  connections stay bound to that one loop.

What TRL 1.16 does with ``None``:

- ``None`` becomes NaN (lines 1630 and 1647).
- A completion for which every function returned ``None`` is unscorable (line 2759). Its
  weighted reward is set to NaN, and the group mean and std use ``nanmean``/``nanstd``, so
  it is left out of its group's baseline (lines 2763-2777, and 2790-2797 for
  ``multi_objective_aggregation="normalize_then_sum"``). Its advantage is then set to 0
  by ``nan_to_num`` (line 2810). The logged ``reward`` and ``rewards/<name>/mean`` skip it
  too (lines 2820-2829). TRL logs one warning with the row's inputs for each batch that
  has such a row (lines 1664-1677).
- The unscorable completion still enters the loss. Its advantage is 0, so it adds no
  policy-gradient term, but the KL penalty ``beta * per_token_kl`` (line 3150) still
  applies to its tokens, and they still count in the loss normalizer.
- A completion where only some functions returned ``None``: with the default
  ``sum_then_normalize``, ``nansum`` counts that component as 0 (line 2763), which biases
  the reward down. With ``normalize_then_sum`` it counts as the group mean.

These functions return ``None`` for every component of an item the service could not
score, so a failed item is always an unscorable row, never a partial one. A component
that the service itself reports as not computable (a ``None`` field of ``Components``) is
passed through and so is a partial ``None``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kg_reward.client import AsyncRewardClient, ClientSettings, RewardClient, ScoreResult
from kg_schema.scoring import ScoreOptions, Weights

__all__ = [
    "AsyncComponentReward",
    "ComponentReward",
    "completion_text",
    "make_reward_functions",
    "reward_weights",
]

DEFAULT_COMPONENTS = ("answer", "entity", "relation")
# "reward" is the service's own weighted total, for training on one function.
KNOWN_COMPONENTS = ("answer", "entity", "relation", "format", "reward")


def completion_text(completion: str | Sequence[Mapping[str, Any]] | Mapping[str, Any]) -> str:
    """Return the text of a TRL completion: a string, or the assistant messages joined.

    Message content may be a string or a list of content blocks, of which only the
    ``{"type": "text"}`` blocks count.
    """
    if isinstance(completion, str):
        return completion
    messages = [completion] if isinstance(completion, Mapping) else list(completion)
    parts = []
    for message in messages:
        if message.get("role", "assistant") != "assistant":
            continue
        content = message.get("content")
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts.extend(
                block["text"]
                for block in content
                if isinstance(block, Mapping) and block.get("type") == "text"
            )
    return "\n".join(parts)


def reward_weights(
    components: Sequence[str] = DEFAULT_COMPONENTS, weights: Weights | None = None
) -> list[float]:
    """Return ``GRPOConfig.reward_weights`` for the functions of ``make_reward_functions``.

    The defaults give [1.0, 0.5, 0.5]: answer, entity and relation, the weights of CheXPO-v2
    (Liang et al., arXiv 2512.17213).
    """
    _check_components(components)
    weights = weights or Weights()
    return [1.0 if name == "reward" else float(getattr(weights, name)) for name in components]


def make_reward_functions(
    client: RewardClient | AsyncRewardClient | ClientSettings | str | Sequence[str],
    *,
    reference_column: str = "reference",
    answer_column: str = "reference_answer",
    weights: Weights | None = None,
    options: ScoreOptions | None = None,
    components: Sequence[str] = DEFAULT_COMPONENTS,
) -> list[ComponentReward] | list[AsyncComponentReward]:
    """Build one TRL reward function per component; they share one request per batch.

    ``client`` may be a ``RewardClient`` (sync functions), an ``AsyncRewardClient``, a
    ``ClientSettings`` or base URLs (async functions). ``weights`` only changes the
    ``reward`` component, because TRL weighs the others with ``GRPOConfig.reward_weights``.
    A missing ``answer_column`` is fine, and then the service reads the answer from the
    reference's ``<answer>`` block. A missing ``reference_column`` raises ``ValueError``.
    """
    _check_components(components)
    if isinstance(client, str):
        client = [client]
    if isinstance(client, ClientSettings):
        client = AsyncRewardClient.from_settings(client)
    elif not isinstance(client, (RewardClient, AsyncRewardClient)):
        # Other settings (timeouts, retries, token) still come from the environment.
        client = AsyncRewardClient.from_settings(ClientSettings(urls=list(client)))

    columns = _Columns(reference=reference_column, answer=answer_column)
    if isinstance(client, RewardClient):
        sync_shared = _SyncBatchScores(client, columns, weights, options, len(components))
        return [ComponentReward(name, sync_shared) for name in components]
    async_shared = _AsyncBatchScores(client, columns, weights, options, len(components))
    return [AsyncComponentReward(name, async_shared) for name in components]


def _check_components(components: Sequence[str]) -> None:
    unknown = [name for name in components if name not in KNOWN_COMPONENTS]
    if unknown or not components:
        raise ValueError(
            f"components must be a non-empty selection of {KNOWN_COMPONENTS}, got "
            f"{tuple(components)!r}"
        )
    if len(set(components)) != len(components):
        raise ValueError(f"components contains duplicates: {tuple(components)!r}")


@dataclass(frozen=True)
class _Columns:
    reference: str
    answer: str


def _build_items(
    completions: Sequence[Any], columns: _Columns, kwargs: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """Turn TRL's arguments into ScoreItem dicts; the client validates them."""
    if columns.reference not in kwargs:
        available = sorted(key for key, value in kwargs.items() if isinstance(value, list))
        raise ValueError(
            f"the dataset has no column {columns.reference!r} with reference rationales; "
            f"the batch has columns {available}. Add the column or pass reference_column="
        )
    references = kwargs[columns.reference]
    answers = kwargs.get(columns.answer) or [None] * len(completions)
    if len(references) != len(completions) or len(answers) != len(completions):
        raise ValueError(
            f"got {len(completions)} completions but {len(references)} values of "
            f"{columns.reference!r} and {len(answers)} of {columns.answer!r}"
        )
    step = getattr(kwargs.get("trainer_state"), "global_step", None)
    prefix = f"step{step}-" if step is not None else ""
    return [
        {
            "id": f"{prefix}{index}",
            "completion": completion_text(completion),
            "reference": reference,
            "reference_answer": answer,
        }
        for index, (completion, reference, answer) in enumerate(
            zip(completions, references, answers, strict=True)
        )
    ]


def _batch_key(items: list[dict[str, Any]]) -> str:
    encoded = json.dumps(items, sort_keys=True, default=str).encode()
    return hashlib.sha256(encoded).hexdigest()


def _component_values(result: ScoreResult, name: str) -> list[float | None]:
    if name == "reward":
        return list(result.rewards)
    return [
        None if components is None else getattr(components, name)
        for components in result.components
    ]


@dataclass
class _CacheEntry:
    """Result of one batch, served once to each sibling function.

    A function that is called again with the same batch gets a fresh request: that is a new
    batch with equal content, not a sibling.
    """

    key: str
    result: Any
    served: set[str] = field(default_factory=set)


class _SyncBatchScores:
    def __init__(
        self,
        client: RewardClient,
        columns: _Columns,
        weights: Weights | None,
        options: ScoreOptions | None,
        n_functions: int,
    ):
        self._client = client
        self._columns = columns
        self._weights = weights
        self._options = options
        self._n_functions = n_functions
        self._lock = threading.Lock()
        self._entry: _CacheEntry | None = None

    def get(self, name: str, completions: Sequence[Any], kwargs: Mapping[str, Any]) -> ScoreResult:
        items = _build_items(completions, self._columns, kwargs)
        key = _batch_key(items)
        with self._lock:
            cached = _take_cached(self._entry, key, name)
            if cached is not None:
                if len(cached.served) == self._n_functions:
                    self._entry = None
                return cached.result
            result = self._client.score(items, weights=self._weights, options=self._options)
            self._entry = _CacheEntry(key, result, {name})
            return result


class _AsyncBatchScores:
    def __init__(
        self,
        client: AsyncRewardClient,
        columns: _Columns,
        weights: Weights | None,
        options: ScoreOptions | None,
        n_functions: int,
    ):
        self._client = client
        self._columns = columns
        self._weights = weights
        self._options = options
        self._n_functions = n_functions
        self._entry: _CacheEntry | None = None

    async def get(
        self, name: str, completions: Sequence[Any], kwargs: Mapping[str, Any]
    ) -> ScoreResult:
        items = _build_items(completions, self._columns, kwargs)
        key = _batch_key(items)
        # No await between the lookup and the store, so siblings running concurrently on
        # the same loop find the task of the first one and share its request.
        cached = _take_cached(self._entry, key, name)
        if cached is not None:
            if len(cached.served) == self._n_functions:
                self._entry = None
            task = cached.result
        else:
            task = asyncio.ensure_future(
                self._client.score(items, weights=self._weights, options=self._options)
            )
            self._entry = _CacheEntry(key, task, {name})
        result: ScoreResult = await task
        return result


def _take_cached(entry: _CacheEntry | None, key: str, name: str) -> _CacheEntry | None:
    if entry is None or entry.key != key or name in entry.served:
        return None
    entry.served.add(name)
    return entry


class ComponentReward:
    """Sync TRL reward function that returns one reward component per completion."""

    def __init__(self, name: str, shared: _SyncBatchScores):
        self.__name__ = name
        self._shared = shared

    def __call__(
        self, prompts: Sequence[Any] | None = None, completions: Sequence[Any] = (), **kwargs: Any
    ) -> list[float | None]:
        result = self._shared.get(self.__name__, completions, kwargs)
        return _component_values(result, self.__name__)

    def __repr__(self) -> str:
        return f"ComponentReward({self.__name__!r})"


class AsyncComponentReward:
    """Async TRL reward function that returns one reward component per completion."""

    def __init__(self, name: str, shared: _AsyncBatchScores):
        self.__name__ = name
        self._shared = shared

    async def __call__(
        self, prompts: Sequence[Any] | None = None, completions: Sequence[Any] = (), **kwargs: Any
    ) -> list[float | None]:
        result = await self._shared.get(self.__name__, completions, kwargs)
        return _component_values(result, self.__name__)

    def __repr__(self) -> str:
        return f"AsyncComponentReward({self.__name__!r})"
