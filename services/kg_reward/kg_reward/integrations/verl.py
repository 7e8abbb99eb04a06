"""verl custom reward functions backed by the kg_reward service.

verl configuration, per item (``reward_model.reward_manager=naive``)::

    custom_reward_function:
      path: /path/to/site-packages/kg_reward/integrations/verl.py
      name: compute_score

or one request per batch (``reward_model.reward_manager=batch``) with
``name: compute_score_batch``. The service URL comes from ``extra_info["kg_reward_url"]``,
else ``KG_REWARD_URL`` (comma-separated for several replicas), else
``KG_REWARD_CLIENT_URLS``. Timeouts and retries come from the ``KG_REWARD_CLIENT_*``
variables of ``ClientSettings``.

The contract, as read in volcengine/verl (``verl/workers/reward_manager/naive.py`` at
commit 10a6180 and ``batch.py`` at commit abddec4):

- The naive manager calls ``compute_score(data_source=..., solution_str=...,
  ground_truth=..., extra_info=...)`` by keyword, once per response, with
  ``ground_truth = non_tensor_batch["reward_model"]["ground_truth"]``.
- The batch manager calls ``compute_score(data_sources=..., solution_strs=...,
  ground_truths=..., extra_infos=..., **reward_kwargs)`` and reads one score per item.
- A score is a float, or a dict whose ``"score"`` is the reward. Every key of the dict is
  appended to a per-key list of ``reward_extra_info``, so every item returns the same keys.
- The score is written into a float tensor, so ``None`` cannot mark a failed item.

``ground_truth`` is the reference rationale, or a dict with ``reference`` and optional
``reference_answer``; ``extra_info["reference_answer"]`` also works.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from kg_reward.client import ClientSettings, RewardClient, ScoreResult
from kg_schema.scoring import Components, ScoreOptions, Weights

__all__ = ["compute_score", "compute_score_batch", "get_client"]

URL_ENV = "KG_REWARD_URL"
FALLBACK_ENV = "KG_REWARD_FALLBACK_SCORE"
COMPONENT_KEYS = ("answer", "entity", "relation", "format")

_clients: dict[tuple[int, tuple[str, ...]], RewardClient] = {}
_clients_lock = threading.Lock()


def get_client(urls: Sequence[str] | None = None) -> RewardClient:
    """Return this process's client for ``urls`` (default: from the environment).

    Clients are keyed by process id too, so a forked worker never reuses its parent's
    connections.
    """
    if urls is not None:
        settings = ClientSettings(urls=list(urls))
    elif os.environ.get(URL_ENV):
        settings = ClientSettings(urls=_split_urls(os.environ[URL_ENV]))
    else:
        settings = ClientSettings()
    key = (os.getpid(), tuple(settings.urls))
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = RewardClient.from_settings(settings)
            _clients[key] = client
        return client


def _split_urls(value: str) -> list[str]:
    return [url.strip() for url in value.split(",") if url.strip()]


def compute_score(
    data_source: str,
    solution_str: str,
    ground_truth: str | Mapping[str, Any],
    extra_info: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> dict[str, float]:
    """Score one response; see ``compute_score_batch`` for the returned dict."""
    return compute_score_batch(
        data_sources=[data_source],
        solution_strs=[solution_str],
        ground_truths=[ground_truth],
        extra_infos=[extra_info],
    )[0]


def compute_score_batch(
    data_sources: Sequence[str],
    solution_strs: Sequence[str],
    ground_truths: Sequence[str | Mapping[str, Any]],
    extra_infos: Sequence[Mapping[str, Any] | None] | None = None,
    **kwargs: Any,
) -> list[dict[str, float]]:
    """Score a batch in one call to the service; one dict per response.

    Each dict has ``score`` (the composite reward), the components ``answer``,
    ``entity``, ``relation`` and ``format`` (NaN where not computed) and
    ``kg_reward_failed`` (1.0 when the service could not score the item, else 0.0).
    """
    extras = list(extra_infos) if extra_infos is not None else [None] * len(solution_strs)
    items = [
        _score_item(solution, truth, extra or {}, index)
        for index, (solution, truth, extra) in enumerate(
            zip(solution_strs, ground_truths, extras, strict=True)
        )
    ]
    first_extra = extras[0] if extras and extras[0] else {}
    url = first_extra.get("kg_reward_url")
    client = get_client([url] if isinstance(url, str) else url)
    result = client.score(
        items,
        weights=_optional_model(Weights, first_extra.get("kg_reward_weights")),
        options=_optional_model(ScoreOptions, first_extra.get("kg_reward_options")),
    )
    return _to_verl_scores(result)


def _score_item(
    solution: str, truth: str | Mapping[str, Any], extra: Mapping[str, Any], index: int
) -> dict[str, Any]:
    if isinstance(truth, Mapping):
        reference = truth.get("reference")
        answer = truth.get("reference_answer", extra.get("reference_answer"))
    else:
        reference, answer = truth, extra.get("reference_answer")
    item_id = extra.get("id", extra.get("index", index))
    return {
        "id": str(item_id),
        "completion": solution,
        "reference": reference,
        "reference_answer": answer,
    }


def _optional_model(model: type[Weights] | type[ScoreOptions], value: Any) -> Any:
    return None if value is None else model.model_validate(value)


def _to_verl_scores(result: ScoreResult) -> list[dict[str, float]]:
    # NOTE: verl cannot leave an item out of its group baseline, so a failed item gets
    # the fallback score (KG_REWARD_FALLBACK_SCORE, default 0.0) and biases that baseline.
    fallback = float(os.environ.get(FALLBACK_ENV, "0.0"))
    scores = []
    for reward, components in zip(result.rewards, result.components, strict=True):
        entry = {"score": fallback if reward is None else float(reward)}
        entry.update(_component_floats(components))
        entry["kg_reward_failed"] = 1.0 if reward is None else 0.0
        scores.append(entry)
    return scores


def _component_floats(components: Components | None) -> dict[str, float]:
    values = {}
    for key in COMPONENT_KEYS:
        value = None if components is None else getattr(components, key)
        values[key] = math.nan if value is None else float(value)
    return values
