"""Error responses of the service: strict JSON parsing and the exception handlers.

Every error response is JSON with ``detail``; validation errors add ``message``, one
line naming each invalid field (``items[2].completion: Field required``). Each handled
error is logged at WARNING with the request id.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response

from kg_reward.errors import InputError, TextTooLongError

logger = logging.getLogger(__name__)


class StrictJSONRequest(Request):
    """A request whose JSON body may not contain NaN, Infinity or -Infinity.

    Python's ``json`` module accepts those constants, but they are not JSON (RFC 8259)
    and a NaN weight or text would turn every reward of a batch into NaN.
    """

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError as error:
                # FastAPI passes an HTTPException raised here through unchanged.
                raise StarletteHTTPException(
                    status_code=400,
                    detail=f"body: invalid UTF-8 at byte {error.start}; encode the JSON body "
                    "as UTF-8",
                ) from error

            def reject_constant(name: str) -> Any:
                raise json.JSONDecodeError(
                    f"{name} is not valid JSON; send a finite number", text, max(text.find(name), 0)
                )

            self._json = json.loads(text, parse_constant=reject_constant)
        return self._json


class StrictJSONRoute(APIRoute):
    """An APIRoute that parses bodies with StrictJSONRequest; FastAPI turns its errors into 422.

    A body sent with a Content-Type other than JSON gets 415, because FastAPI would pass it
    on as raw bytes and answer with a misleading "Input should be a valid dictionary".
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict_handler(request: Request) -> Response:
            content_type = request.headers.get("content-type")
            if content_type is not None and not _is_json(content_type):
                raise StarletteHTTPException(
                    status_code=415,
                    detail=f"body sent as Content-Type: {content_type[:100]}; send "
                    "Content-Type: application/json",
                )
            return await handler(StrictJSONRequest(request.scope, request.receive))

        return strict_handler


def _is_json(content_type: str) -> bool:
    media_type = content_type.partition(";")[0].strip().lower()
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


def field_path(location: Sequence[int | str]) -> str:
    """Format a pydantic error location as ``items[2].completion`` (without ``body``)."""
    parts = list(location[1:]) if location and location[0] == "body" else list(location)
    path = ""
    for part in parts:
        if isinstance(part, int):
            path += f"[{part}]"
        elif path:
            path += f".{part}"
        else:
            path = str(part)
    return path or "body"


def describe_validation_errors(errors: Sequence[dict[str, Any]]) -> str:
    """Join the errors into one line that names every invalid field."""
    lines = []
    for error in errors:
        # Pydantic prefixes messages of model validators with "Value error, ".
        message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
        reason = (error.get("ctx") or {}).get("error")
        if error.get("type") == "json_invalid" and reason:
            message = f"invalid JSON at character {error['loc'][-1]}: {reason}"
            lines.append(message)
            continue
        lines.append(f"{field_path(error.get('loc', ()))}: {message}")
    return "; ".join(lines)


def _request_id(request: Request) -> str:
    return getattr(request.state, "request_id", "-")


async def _validation_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, RequestValidationError)
    # Inputs are left out: they can be 100,000-character texts.
    details = [
        {key: value for key, value in item.items() if key in ("type", "loc", "msg")}
        for item in error.errors()
    ]
    for detail, item in zip(details, error.errors(), strict=True):
        if isinstance((item.get("ctx") or {}).get("error"), str):
            detail["ctx"] = {"error": item["ctx"]["error"]}
    message = describe_validation_errors(error.errors())
    logger.warning("request_id=%s invalid request: %s", _request_id(request), message)
    return JSONResponse({"detail": details, "message": message}, status_code=422)


async def _http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, StarletteHTTPException)
    logger.warning(
        "request_id=%s HTTP %d: %s", _request_id(request), error.status_code, error.detail
    )
    return JSONResponse(
        {"detail": error.detail}, status_code=error.status_code, headers=error.headers
    )


async def _input_error(request: Request, error: Exception) -> Response:
    # The routes check limits first; this catches what the extractor rejects on its own.
    status = 413 if isinstance(error, TextTooLongError) else 422
    logger.warning("request_id=%s HTTP %d: %s", _request_id(request), status, error)
    return JSONResponse({"detail": str(error)}, status_code=status)


def add_exception_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(InputError, _input_error)
