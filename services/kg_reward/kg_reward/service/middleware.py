"""Request id, access log, metrics and last-resort error handling for every HTTP request."""

from __future__ import annotations

import logging
import re
import time
import uuid

from starlette.datastructures import MutableHeaders
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kg_reward.service import metrics

logger = logging.getLogger(__name__)

REQUEST_ID_HEADER = "X-Request-ID"
# Incoming ids are echoed into logs and headers, so only short, plain tokens are kept.
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
# Probes and scrapes arrive every few seconds; their lines go to DEBUG to keep INFO readable.
_QUIET_ROUTES = frozenset({"/healthz", "/readyz", "/metrics"})


class RequestContextMiddleware:
    """Tag each request with an id, time it, count it and log one line when it ends.

    The id comes from a valid ``X-Request-ID`` header or is generated, lands in
    ``request.state.request_id`` and goes back in the response header. Routes set
    ``request.state.batch_size`` for the log line and the item counter. An exception that
    no handler caught is logged with the id and gets a 500 response that carries it.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        request_id = _incoming_request_id(scope) or uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        started = time.perf_counter()
        status = 500
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                MutableHeaders(scope=message).append(REQUEST_ID_HEADER, request_id)
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            logger.exception(
                "request_id=%s %s %s failed", request_id, scope["method"], scope["path"]
            )
            if response_started:
                raise
            status = 500
            response = JSONResponse(
                {
                    "detail": f"internal server error; the service log has the traceback under "
                    f"request id {request_id}"
                },
                status_code=500,
                headers={REQUEST_ID_HEADER: request_id},
            )
            await response(scope, receive, send)
        finally:
            _record(scope, state, request_id, status, time.perf_counter() - started)


def _incoming_request_id(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            text = value.decode("latin-1")
            return text if _VALID_REQUEST_ID.fullmatch(text) else None
    return None


def _route_label(scope: Scope) -> str:
    # The route template, not the raw path, keeps the metric label set bounded.
    route = scope.get("route")
    return getattr(route, "path", None) or "unmatched"


def _record(scope: Scope, state: dict, request_id: str, status: int, seconds: float) -> None:
    route = _route_label(scope)
    batch_size = state.get("batch_size")
    metrics.REQUESTS.labels(route=route, status=str(status)).inc()
    metrics.LATENCY.labels(route=route).observe(seconds)
    if status >= 400:
        metrics.ERRORS.labels(route=route, status=str(status)).inc()
    if batch_size is not None and status < 400:
        metrics.ITEMS.labels(route=route).inc(batch_size)

    level = logging.DEBUG if route in _QUIET_ROUTES and status < 400 else logging.INFO
    logger.log(
        level,
        "request_id=%s method=%s route=%s status=%d batch=%s duration_ms=%.1f",
        request_id,
        scope["method"],
        route,
        status,
        "-" if batch_size is None else batch_size,
        seconds * 1000.0,
    )
