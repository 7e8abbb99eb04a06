"""Liveness and readiness probes; they stay open when a bearer token is set."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="The extraction pipeline is loaded",
    responses={503: {"description": "The pipeline is still loading."}},
)
async def readyz(request: Request) -> JSONResponse:
    if request.app.state.scorer is None:
        return JSONResponse({"status": "loading"}, status_code=503, headers={"Retry-After": "5"})
    return JSONResponse({"status": "ready"})
