"""Application factory of the reward service.

    uvicorn --factory kg_reward.service.app:create_app   (or: kg-reward serve)

Each worker process calls ``create_app()``; its lifespan loads the spaCy pipeline once,
before the worker accepts connections, and keeps it in ``app.state.scorer``.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from kg_reward.scoring import RewardScorer
from kg_reward.service.errors import add_exception_handlers
from kg_reward.service.middleware import RequestContextMiddleware
from kg_reward.service.routes import extract, health, openrlhf, score
from kg_reward.service.routes import metrics as metrics_route
from kg_reward.service.settings import Settings

logger = logging.getLogger(__name__)

PROTECTED_PATHS = ("/score", "/extract", "/openrlhf/reward")

DESCRIPTION = (
    "Knowledge-graph process rewards for chest X-ray reasoning. POST /score takes "
    "completions with their own references and returns the composite reward and its "
    "components; POST /extract returns the knowledge graphs of texts; POST "
    "/openrlhf/reward speaks OpenRLHF's remote reward-model protocol.\n\n"
    "Request `weights` and `options` replace only the fields they send; the rest keep the "
    "service defaults (KG_REWARD_WEIGHTS, KG_REWARD_OPTIONS), and `explain` never changes "
    "the reward.\n\n"
    "Scoring behaviours to know: the `chexpo` preset matches surface text exactly, so it is "
    "case-sensitive as published. Uncertain (hedged) findings carry `*_present` labels, the "
    "ReXKG convention, so they match affirmed ones. Two empty sets score `empty_score` (1.0 "
    "by default, as published), so a rationale without findings gets full entity and "
    "relation credit against a reference without findings; raise the format weight or lower "
    "`empty_score` to counter it. In `canonical` match mode a relation carries the labels of "
    "both ends, so a negated finding never matches an affirmed one."
)


def create_app(settings: Settings | None = None, *, scorer: RewardScorer | None = None) -> FastAPI:
    """Build the app; pass ``scorer`` to reuse an already loaded pipeline (tests)."""
    settings = settings or Settings()
    logging.getLogger("kg_reward").setLevel(settings.log_level)

    app = FastAPI(title="kg-reward", version="0.1.0", description=DESCRIPTION, lifespan=_lifespan)
    app.state.settings = settings
    app.state.scorer = scorer
    add_exception_handlers(app)
    app.add_middleware(RequestContextMiddleware)
    for router in (
        score.router,
        extract.router,
        openrlhf.router,
        health.router,
        metrics_route.router,
    ):
        app.include_router(router)
    if settings.api_token is not None:
        app.openapi = partial(_openapi_with_bearer_auth, app)  # type: ignore[method-assign]
    return app


def _openapi_with_bearer_auth(app: FastAPI) -> dict[str, Any]:
    """Return the OpenAPI schema with bearer auth on the routes that ``require_token`` guards."""
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        schema.setdefault("components", {})["securitySchemes"] = {
            "bearer": {"type": "http", "scheme": "bearer", "description": "KG_REWARD_API_TOKEN"}
        }
        for path in PROTECTED_PATHS:
            for operation in schema["paths"].get(path, {}).values():
                operation["security"] = [{"bearer": []}]
        app.openapi_schema = schema
    return app.openapi_schema


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    if app.state.scorer is None:
        app.state.scorer = load_scorer(app.state.settings)
    yield
    logger.info("worker %d stopping", os.getpid())


def load_scorer(settings: Settings) -> RewardScorer:
    """Load the extraction pipeline named by the settings and wrap it in a scorer."""
    import kg_reward
    from kg_reward.extraction import Extractor

    started = time.perf_counter()
    loaded = kg_reward.load(settings.pipeline_path)
    # The scorer's reference cache (with hit and miss metrics) replaces the extractor's own
    # text cache. The extractor's sentence cache stays, sized by KG_REWARD_SENTENCE_CACHE_SIZE,
    # so caching is fully off only when that and KG_REWARD_CACHE_SIZE are both 0.
    extractor = Extractor(
        loaded.nlp,
        skip_sections=loaded.skip_sections,
        cache_size=0,
        sentence_cache_size=settings.sentence_cache_size,
    )
    logger.info(
        "process %d loaded the pipeline (%s) in %.1f s",
        os.getpid(),
        settings.pipeline_path or "packaged",
        time.perf_counter() - started,
    )
    return RewardScorer(
        extractor,
        cache_size=settings.cache_size,
        think_tag=settings.think_tag,
        answer_tag=settings.answer_tag,
    )
