"""POST /extract: knowledge graphs of radiology texts."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from kg_reward.service.deps import ScorerDep, SettingsDep, require_token
from kg_reward.service.errors import StrictJSONRoute
from kg_reward.service.limits import check_batch_size, check_text_lengths
from kg_reward.service.routes.score import ERROR_RESPONSES
from kg_schema.scoring import ExtractRequest, ExtractResponse

router = APIRouter(
    tags=["extraction"], route_class=StrictJSONRoute, dependencies=[Depends(require_token)]
)


@router.post("/extract", response_model=ExtractResponse, responses=ERROR_RESPONSES)
def extract(
    body: ExtractRequest, request: Request, scorer: ScorerDep, settings: SettingsDep
) -> ExtractResponse:
    """Extract one graph per text, in order; each graph carries the matching id if given."""
    request.state.batch_size = len(body.texts)
    check_batch_size(len(body.texts), "texts", settings)
    check_text_lengths(
        ((f"texts[{position}]", text) for position, text in enumerate(body.texts)), settings
    )
    return ExtractResponse(graphs=scorer.extract(body.texts, ids=body.ids))
