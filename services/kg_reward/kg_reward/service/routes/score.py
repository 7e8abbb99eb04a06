"""POST /score: composite rewards of completions against their own references."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from fastapi import APIRouter, Depends, Request

from kg_reward.scoring import merge_options, merge_weights
from kg_reward.service import metrics
from kg_reward.service.deps import ScorerDep, SettingsDep, require_token
from kg_reward.service.errors import StrictJSONRoute
from kg_reward.service.limits import check_batch_size, check_text_lengths
from kg_schema.scoring import ScoreItem, ScoreRequest, ScoreResponse

ERROR_RESPONSES: dict[int | str, dict[str, str]] = {
    401: {"description": "A bearer token is configured and the request lacks it."},
    400: {"description": "The body is not valid UTF-8."},
    413: {"description": "Too many items or a text past the character limit."},
    415: {"description": "The body is not sent as Content-Type: application/json."},
    422: {"description": "Invalid body; `message` names each invalid field."},
    503: {"description": "The extraction pipeline is not loaded yet."},
}

router = APIRouter(
    tags=["reward"], route_class=StrictJSONRoute, dependencies=[Depends(require_token)]
)


@router.post("/score", response_model=ScoreResponse, responses=ERROR_RESPONSES)
def score(
    body: ScoreRequest, request: Request, scorer: ScorerDep, settings: SettingsDep
) -> ScoreResponse:
    """Score each completion against its own reference; results keep the item order.

    Weight and option fields left out keep the service defaults (KG_REWARD_WEIGHTS,
    KG_REWARD_OPTIONS), field by field; a preset applies over the merged options. The
    reference cache keeps reference graphs between requests.
    """
    # A plain def: scoring is CPU-bound, so FastAPI runs it on the thread pool.
    request.state.batch_size = len(body.items)
    check_batch_size(len(body.items), "items", settings)
    check_text_lengths(item_texts(body.items), settings)

    scored = scorer.score_batch(
        body.items,
        weights=merge_weights(settings.weights, body.weights),
        options=merge_options(settings.options, body.options),
    )
    metrics.CACHE_HITS.inc(scored.stats.cache_hits)
    metrics.CACHE_MISSES.inc(scored.stats.cache_misses)
    return scored.response


def item_texts(items: Sequence[ScoreItem]) -> Iterator[tuple[str, str | None]]:
    for position, item in enumerate(items):
        yield f"items[{position}].completion", item.completion
        yield f"items[{position}].reference", item.reference
        yield f"items[{position}].reference_answer", item.reference_answer
