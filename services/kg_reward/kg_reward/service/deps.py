"""Typed dependencies of the routes: settings, the loaded scorer and bearer-token auth."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from kg_reward.scoring import RewardScorer
from kg_reward.service.settings import Settings

# The dependencies are async because they do no blocking work: FastAPI would otherwise
# run each one on the thread pool.


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_scorer(request: Request) -> RewardScorer:
    """Return the worker's scorer, or raise 503 while the pipeline is not loaded."""
    scorer: RewardScorer | None = request.app.state.scorer
    if scorer is None:
        raise HTTPException(
            status_code=503,
            detail="the extraction pipeline is not loaded yet; retry when /readyz returns 200",
            headers={"Retry-After": "5"},
        )
    return scorer


SettingsDep = Annotated[Settings, Depends(get_settings)]
ScorerDep = Annotated[RewardScorer, Depends(get_scorer)]


async def require_token(request: Request, settings: SettingsDep) -> None:
    """Raise 401 unless the request carries the configured bearer token (if one is set).

    The header is read by hand rather than with ``fastapi.security.HTTPBearer`` so that the
    OpenAPI schema declares bearer auth only when a token is set (see ``app.py``).
    """
    if settings.api_token is None:
        return
    expected = settings.api_token.get_secret_value().encode()
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not secrets.compare_digest(
        credentials.strip().encode(), expected
    ):
        raise HTTPException(
            status_code=401,
            detail="missing or invalid bearer token; send 'Authorization: Bearer <token>' "
            "with the value of KG_REWARD_API_TOKEN",
            headers={"WWW-Authenticate": "Bearer"},
        )
