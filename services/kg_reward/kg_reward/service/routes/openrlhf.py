"""POST /openrlhf/reward: the remote reward-model protocol of OpenRLHF.

Point OpenRLHF at it with ``--remote_rm_url http://HOST:PORT/openrlhf/reward`` and
``--label_key`` naming the dataset column with the reference.

Verified against OpenRLHF/OpenRLHF (``openrlhf/utils/remote_rm_utils.py`` and
``openrlhf/utils/agent.py``): the trainer POSTs ``{"query": [...], "prompts": [...],
"labels": [...]}``, where each query is the prompt plus the response decoded with
``skip_special_tokens=False``, and reads ``rewards``, then ``scores`` (falling back to
``rewards`` when absent) and ``extra_logs`` from the JSON reply. Some forks add fields
such as ``datasources``; unknown fields are therefore ignored here.

A label is either the reference text, or a JSON object (sent as an object or as a JSON
string) ``{"reference": "...", "reference_answer": "..."}``.
The reply's ``scores`` are the rewards divided by the sum of the weights of the components
that were computed, so they lie in [0, 1] as OpenRLHF's dynamic filtering expects and a
perfect completion scores 1.0. The answer component is None when the label has no
reference answer (a plain-text label without an ``<answer>`` block), and its weight then
stays out of the divisor. ``extra_logs`` holds one list per component; a component that is
None is logged as 0.0, the value it adds to the reward.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from kg_reward.service import metrics
from kg_reward.service.deps import ScorerDep, SettingsDep, require_token
from kg_reward.service.errors import StrictJSONRoute
from kg_reward.service.limits import check_batch_size, check_text_lengths
from kg_reward.service.routes.score import ERROR_RESPONSES
from kg_schema.scoring import Components, ScoreItem, UnicodeText, Weights

logger = logging.getLogger(__name__)

# Special tokens of common chat templates: ChatML and Llama 3 (<|im_end|>, <|eot_id|>),
# Phi (<|end|>), DeepSeek (<｜end▁of▁sentence｜>), SentencePiece (<s>, </s>), Gemma
# (<start_of_turn>, <end_of_turn>) and BERT-style ([PAD]). Tags such as <think> and
# <answer> do not match.
_SPECIAL_TOKEN = re.compile(
    r"<\|[^<>|\s]{1,64}\|>"
    r"|<｜[^<>｜]{1,64}｜>"
    r"|</?s>|<pad>|<unk>|<eos>|<bos>|<start_of_turn>|<end_of_turn>"
    r"|\[(?:PAD|CLS|SEP|UNK|MASK)\]"
)


class OpenRLHFRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    query: list[UnicodeText] = Field(
        description="Prompt plus response, special tokens included."
    )
    prompts: list[UnicodeText] | None = Field(
        default=None, description="The prompts, one per query; stripped from the front of each."
    )
    # Labels are checked one by one in label_to_item, so that an error names labels[i]
    # once instead of listing pydantic's union branches.
    labels: list[Any] = Field(
        description="One reference per query: text, or {'reference', 'reference_answer'}."
    )

    @model_validator(mode="after")
    def _check_lengths(self) -> OpenRLHFRequest:
        count = len(self.query)
        for name in ("prompts", "labels"):
            values = getattr(self, name)
            if values is not None and len(values) != count:
                raise ValueError(
                    f"{name} has {len(values)} entries but query has {count}; send one "
                    f"{name[:-1]} per query"
                )
        return self


class OpenRLHFResponse(BaseModel):
    rewards: list[float]
    scores: list[float]
    extra_logs: dict[str, list[float]]


router = APIRouter(
    tags=["reward"], route_class=StrictJSONRoute, dependencies=[Depends(require_token)]
)


@router.post("/openrlhf/reward", response_model=OpenRLHFResponse, responses=ERROR_RESPONSES)
def openrlhf_reward(
    body: OpenRLHFRequest, request: Request, scorer: ScorerDep, settings: SettingsDep
) -> OpenRLHFResponse:
    """Score OpenRLHF rollouts with the service's default weights and options."""
    request.state.batch_size = len(body.query)
    check_batch_size(len(body.query), "query", settings)
    prompts: list[str | None] = (
        [None] * len(body.query) if body.prompts is None else [*body.prompts]
    )
    items = []
    for position, (query, prompt) in enumerate(zip(body.query, prompts, strict=True)):
        items.append(label_to_item(body.labels[position], position, response_text(query, prompt)))
    check_text_lengths(_item_texts(items), settings)

    scored = scorer.score_batch(items, weights=settings.weights, options=settings.options)
    metrics.CACHE_HITS.inc(scored.stats.cache_hits)
    metrics.CACHE_MISSES.inc(scored.stats.cache_misses)

    rewards = scored.response.rewards
    components = scored.response.components
    return OpenRLHFResponse(
        rewards=rewards,
        scores=[
            normalized_score(reward, component, settings.weights)
            for reward, component in zip(rewards, components, strict=True)
        ],
        extra_logs={
            name: [getattr(component, name) or 0.0 for component in components]
            for name in ("answer", "entity", "relation", "format")
        },
    )


def normalized_score(reward: float, components: Components, weights: Weights) -> float:
    """Divide ``reward`` by the summed weights of the components that are not None."""
    total = sum(
        getattr(weights, name)
        for name in ("answer", "entity", "relation", "format")
        if getattr(components, name) is not None
    )
    return reward / total if total > 0 else 0.0


def _item_texts(items: list[ScoreItem]) -> list[tuple[str, str | None]]:
    """Name each scored text after the request field it came from, for the 413 message."""
    texts: list[tuple[str, str | None]] = []
    for position, item in enumerate(items):
        texts.append((f"query[{position}] (response part)", item.completion))
        texts.append((f"labels[{position}] (reference)", item.reference))
        texts.append((f"labels[{position}] (reference_answer)", item.reference_answer))
    return texts


def response_text(query: str, prompt: str | None) -> str:
    """Return the response part of a query, without the prompt and special tokens.

    The prompt is cut at its first occurrence (a decoded BOS token may precede it). When
    the prompt is not found verbatim, the comparison is retried with special tokens
    removed from both, and the whole query is kept if that fails too.
    """
    if prompt:
        position = query.find(prompt)
        if position >= 0:
            return strip_special_tokens(query[position + len(prompt) :])
        plain_query, plain_prompt = strip_special_tokens(query), strip_special_tokens(prompt)
        position = plain_query.find(plain_prompt)
        if position >= 0 and plain_prompt:
            return plain_query[position + len(plain_prompt) :]
        logger.warning("prompt not found in its query; scoring the whole query")
    return strip_special_tokens(query)


def strip_special_tokens(text: str) -> str:
    return _SPECIAL_TOKEN.sub("", text).strip()


def label_to_item(label: Any, position: int, completion: str) -> ScoreItem:
    """Build the ScoreItem of one query; invalid labels raise a 422 naming ``labels[i]``."""
    if label is not None and not isinstance(label, (str, dict)):
        raise _label_error(
            position,
            f"must be a string or an object with 'reference', got {type(label).__name__}",
        )
    if isinstance(label, str) and label.lstrip().startswith("{"):
        try:
            label = json.loads(label)
        except json.JSONDecodeError as error:
            problem = f"starts with '{{' but is not valid JSON ({error.msg})"
            raise _label_error(position, problem) from error
    if isinstance(label, dict):
        reference = label.get("reference")
        answer = label.get("reference_answer")
        unknown = sorted(set(label) - {"reference", "reference_answer"})
        if unknown:
            raise _label_error(
                position, f"has unknown keys {unknown}; use reference, reference_answer"
            )
        if not isinstance(reference, str) or not reference.strip():
            raise _label_error(position, "needs a non-empty string under 'reference'")
        if answer is not None and not isinstance(answer, str):
            raise _label_error(position, "has a 'reference_answer' that is not a string")
        return _build_item(position, completion, reference, answer)
    if not label or not label.strip():
        raise _label_error(
            position, "is empty; set OpenRLHF's --label_key to the column with the reference"
        )
    return _build_item(position, completion, label, None)


def _build_item(position: int, completion: str, reference: str, answer: str | None) -> ScoreItem:
    try:
        return ScoreItem(completion=completion, reference=reference, reference_answer=answer)
    except ValidationError as error:
        # The query was validated already, so the problem lies in the label.
        problems = "; ".join(
            f"{item['loc'][0]} {str(item['msg']).removeprefix('Value error, ')}"
            for item in error.errors()
        )
        raise _label_error(position, problems) from None


def _label_error(position: int, problem: str) -> RequestValidationError:
    """Return a 422 error whose message reads ``labels[i]: <problem>``."""
    location = ("body", "labels", position)
    return RequestValidationError([{"type": "value_error", "loc": location, "msg": problem}])
