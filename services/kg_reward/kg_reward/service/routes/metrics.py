"""Prometheus exposition of the service metrics."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from kg_reward.service.metrics import render_metrics

router = APIRouter(tags=["health"])


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
def get_metrics() -> Response:
    # A plain def: with several workers the collector reads the metric files from disk.
    content, content_type = render_metrics()
    return Response(content=content, media_type=content_type)
