"""HTTP clients of the kg_reward service, for trainer processes.

``RewardClient`` (sync) and ``AsyncRewardClient`` send ``POST /score`` requests to one or
more service replicas. A batch is split into chunks that go to the replicas concurrently.
A chunk is retried with exponential backoff and jitter on connection errors, timeouts,
408, 429 and 5xx, and a failed replica's chunk moves to the next replica. A chunk that
the service rejects with 413 or 422 is split in halves until the rejected items are
isolated, so one invalid item costs only its own reward. Items that still
fail get the reward ``None`` and a logged WARNING, so an unreachable or failing service
raises nothing into the training loop, unless the client was built with
``raise_on_error=True``.

Logging: each request at DEBUG (URL, item count, status, duration), because a trainer
sends several per step; retries at INFO and failed items at WARNING. Repeats of a retry or
failure message with the same cause are logged at most once per ``warning_interval``
seconds, and the next line says how many were left out.

This module imports neither spaCy nor torch: it only needs httpx, pydantic and kg_schema.

Exceptions raised with ``raise_on_error=True``:

    RewardClientError
     +-- ServiceUnavailableError   no replica answered with a score: connection errors,
     |                             timeouts, 408, 429 or 5xx until the attempts ran out
     +-- BadResponseError          a 4xx other than 408/429 (the request is invalid), or a
                                   2xx body that does not match ScoreResponse

An item that fails validation before sending (say, a dict without ``completion``) raises
pydantic's ``ValidationError``, a ``ValueError``, in that mode.
"""

from __future__ import annotations

import asyncio
import email.utils
import itertools
import logging
import math
import random
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import TracebackType
from typing import Annotated, Any

import httpx
from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from kg_schema.scoring import (
    Components,
    Explanation,
    ScoreItem,
    ScoreOptions,
    ScoreResponse,
    Weights,
)

__all__ = [
    "AsyncRewardClient",
    "BadResponseError",
    "ClientSettings",
    "RetryPolicy",
    "RewardClient",
    "RewardClientError",
    "ScoreResult",
    "ServiceUnavailableError",
]

logger = logging.getLogger(__name__)

# Module-level so that tests can replace them and record the waits instead of sleeping.
_sleep = time.sleep
_async_sleep = asyncio.sleep

RETRYABLE_STATUS_CODES = frozenset({408, 429})
# A chunk rejected with these is split in halves until the rejected items are isolated,
# because one text past the service's length limit would otherwise fail the whole chunk.
SPLIT_STATUS_CODES = frozenset({413, 422})
MAX_LOGGED_IDS = 8


# --- errors -------------------------------------------------------------------------


class RewardClientError(Exception):
    """Base class of the errors raised by the reward clients."""

    def __init__(self, message: str, *, url: str | None = None, status_code: int | None = None):
        super().__init__(message)
        self.url = url
        self.status_code = status_code


class ServiceUnavailableError(RewardClientError):
    """No replica returned a score before the attempts ran out."""


class BadResponseError(RewardClientError):
    """The service rejected the request (4xx) or returned a body that breaks the contract."""


class _RetryableFailure(Exception):
    """One attempt failed in a way that another attempt may fix."""

    def __init__(
        self,
        message: str,
        *,
        url: str,
        status_code: int | None = None,
        retry_after: float | None = None,
    ):
        super().__init__(message)
        self.url = url
        self.status_code = status_code
        self.retry_after = retry_after


# --- configuration ------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """Bounds of the retry loop of one chunk; all durations in seconds."""

    max_attempts: int = 4
    """Requests per chunk, all replicas together; every replica gets at least one."""
    backoff_initial: float = 0.25
    """Wait after the first round of failed attempts; doubles each round."""
    backoff_max: float = 8.0
    """Upper bound of the exponential wait."""
    jitter: float = 0.5
    """Fraction of the wait drawn at random, so replicas are not hit in lockstep."""
    retry_after_max: float = 30.0
    """Upper bound on a server's Retry-After value."""

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {self.max_attempts}")
        if self.backoff_initial < 0 or self.backoff_max < 0 or self.retry_after_max < 0:
            raise ValueError(
                "backoff_initial, backoff_max and retry_after_max must be >= 0, got "
                f"{self.backoff_initial}, {self.backoff_max}, {self.retry_after_max}"
            )
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"jitter must be within [0, 1], got {self.jitter}")

    def wait_seconds(self, round_index: int, retry_after: float | None) -> float:
        """Return the wait before retry round ``round_index + 1``.

        A Retry-After value from the server replaces the exponential backoff, capped at
        ``retry_after_max``.
        """
        if retry_after is not None:
            return min(retry_after, self.retry_after_max)
        base = min(self.backoff_max, self.backoff_initial * 2**round_index)
        return base * (1 - self.jitter * random.random())


class ClientSettings(BaseSettings):
    """Client configuration, read from ``KG_REWARD_CLIENT_*`` environment variables.

    Example: ``KG_REWARD_CLIENT_URLS=http://rm-0:8000,http://rm-1:8000``.
    """

    model_config = SettingsConfigDict(env_prefix="KG_REWARD_CLIENT_", extra="ignore")

    urls: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["http://127.0.0.1:8000"],
        description="Base URLs of the service replicas, comma-separated in the environment.",
    )
    token: SecretStr | None = Field(
        default=None, description="Bearer token sent in the Authorization header."
    )
    connect_timeout: float = Field(
        default=5.0, gt=0, description="Seconds to open a TCP connection."
    )
    read_timeout: float = Field(
        default=60.0, gt=0, description="Seconds to wait for the response of one request."
    )
    write_timeout: float = Field(default=30.0, gt=0, description="Seconds to send a request.")
    pool_timeout: float = Field(
        default=30.0, gt=0, description="Seconds to wait for a free connection of the pool."
    )
    max_connections: int = Field(
        default=16, ge=1, description="Open connections, all replicas together."
    )
    max_keepalive_connections: int = Field(
        default=8, ge=0, description="Idle connections kept open."
    )
    max_concurrency: int = Field(default=8, ge=1, description="Chunks in flight at once.")
    max_items_per_request: int = Field(default=64, ge=1, description="Items per POST /score.")
    max_attempts: int = Field(default=4, ge=1, description="Requests per chunk before giving up.")
    backoff_initial: float = Field(
        default=0.25, ge=0, description="Seconds of the first retry wait."
    )
    backoff_max: float = Field(default=8.0, ge=0, description="Maximum seconds of one retry wait.")
    retry_after_max: float = Field(
        default=30.0, ge=0, description="Maximum seconds honoured from a Retry-After header."
    )
    raise_on_error: bool = Field(
        default=False, description="Raise RewardClientError instead of returning None rewards."
    )
    warning_interval: float = Field(
        default=30.0,
        ge=0,
        description="Seconds between two log lines of the same repeated warning.",
    )

    replica_cooldown: float = Field(
        default=10.0,
        ge=0,
        description="Seconds a replica that failed to connect or timed out is tried last.",
    )

    @field_validator("urls", mode="before")
    @classmethod
    def _split_urls(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [url.strip() for url in value.split(",") if url.strip()]
        return value

    def timeout(self) -> httpx.Timeout:
        return httpx.Timeout(
            connect=self.connect_timeout,
            read=self.read_timeout,
            write=self.write_timeout,
            pool=self.pool_timeout,
        )

    def limits(self) -> httpx.Limits:
        return httpx.Limits(
            max_connections=self.max_connections,
            max_keepalive_connections=self.max_keepalive_connections,
        )

    def retry(self) -> RetryPolicy:
        return RetryPolicy(
            max_attempts=self.max_attempts,
            backoff_initial=self.backoff_initial,
            backoff_max=self.backoff_max,
            retry_after_max=self.retry_after_max,
        )

    def client_kwargs(self) -> dict[str, Any]:
        """Return the keyword arguments of ``RewardClient`` and ``AsyncRewardClient``."""
        return {
            "token": self.token.get_secret_value() if self.token else None,
            "timeout": self.timeout(),
            "limits": self.limits(),
            "retry": self.retry(),
            "max_items_per_request": self.max_items_per_request,
            "max_concurrency": self.max_concurrency,
            "raise_on_error": self.raise_on_error,
            "warning_interval": self.warning_interval,
            "replica_cooldown": self.replica_cooldown,
        }


DEFAULT_SETTINGS = ClientSettings.model_construct(urls=[])
DEFAULT_TIMEOUT = DEFAULT_SETTINGS.timeout()
DEFAULT_LIMITS = DEFAULT_SETTINGS.limits()


# --- results ------------------------------------------------------------------------


@dataclass
class ScoreResult:
    """Scores of one batch, in the order of the items; ``None`` where an item failed."""

    rewards: list[float | None]
    components: list[Components | None]
    explanations: list[Explanation | None] | None
    errors: list[RewardClientError | ValidationError | None]
    """Cause of each failed item; ``None`` for the items that were scored."""

    @property
    def failed_count(self) -> int:
        return sum(error is not None for error in self.errors)


@dataclass
class _Chunk:
    indices: list[int]
    items: list[ScoreItem]
    first_replica: int

    def halves(self) -> list[_Chunk]:
        middle = len(self.items) // 2
        return [
            _Chunk(self.indices[:middle], self.items[:middle], self.first_replica),
            _Chunk(self.indices[middle:], self.items[middle:], self.first_replica),
        ]


ChunkOutcome = tuple[_Chunk, ScoreResponse | RewardClientError]


# --- shared logic of both clients ---------------------------------------------------


class _WarningLimiter:
    """Log a warning at most once per interval per key and count the lines left out."""

    def __init__(self, interval: float):
        self._interval = interval
        self._lock = threading.Lock()
        self._state: dict[str, tuple[float, int]] = {}

    def log(self, level: int, key: str, message: str, *args: object) -> None:
        now = time.monotonic()
        with self._lock:
            last, suppressed = self._state.get(key, (-math.inf, 0))
            if now - last < self._interval:
                self._state[key] = (last, suppressed + 1)
                return
            self._state[key] = (now, 0)
        if suppressed:
            message += " (%d similar messages left out since the last one)"
            args = (*args, suppressed)
        logger.log(level, message, *args)


def _parse_retry_after(value: str | None) -> float | None:
    """Return the wait that a Retry-After header requests, in seconds (RFC 9110 10.2.3)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _body_excerpt(response: httpx.Response, limit: int = 300) -> str:
    text = response.text
    return text if len(text) <= limit else text[:limit] + "..."


def _read_response(response: httpx.Response, url: str, n_items: int) -> ScoreResponse:
    """Return the scores of a response, or raise the error its status calls for."""
    status = response.status_code
    if status in RETRYABLE_STATUS_CODES or status >= 500:
        raise _RetryableFailure(
            f"{url} returned HTTP {status}: {_body_excerpt(response)}",
            url=url,
            status_code=status,
            retry_after=_parse_retry_after(response.headers.get("Retry-After")),
        )
    if status >= 400:
        raise BadResponseError(
            f"{url} rejected the request with HTTP {status}; fix the request, retrying "
            f"will not help: {_body_excerpt(response)}",
            url=url,
            status_code=status,
        )
    try:
        scores = ScoreResponse.model_validate_json(response.content)
    except ValidationError as error:
        raise BadResponseError(
            f"{url} returned HTTP {status} with a body that is not a ScoreResponse: "
            f"{error.error_count()} errors, first: {error.errors()[0]['msg']}",
            url=url,
            status_code=status,
        ) from error
    if len(scores.rewards) != n_items or len(scores.components) != n_items:
        raise BadResponseError(
            f"{url} returned {len(scores.rewards)} rewards and {len(scores.components)} "
            f"components for {n_items} items",
            url=url,
            status_code=status,
        )
    return scores


def _transport_failure(error: httpx.TransportError, url: str) -> _RetryableFailure:
    kind = "timed out" if isinstance(error, httpx.TimeoutException) else "failed"
    return _RetryableFailure(f"request to {url} {kind}: {type(error).__name__}: {error}", url=url)


def _coerce_item(item: ScoreItem | Mapping[str, Any]) -> ScoreItem:
    if isinstance(item, ScoreItem):
        return item
    return ScoreItem.model_validate(item)


def _normalize_urls(urls: str | Sequence[str]) -> list[str]:
    url_list = [urls] if isinstance(urls, str) else list(urls)
    if not url_list:
        raise ValueError("urls is empty; pass at least one base URL such as http://127.0.0.1:8000")
    for url in url_list:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"base URL {url!r} must start with http:// or https://")
    return [url.rstrip("/") for url in url_list]


class _ClientCore:
    """Configuration, chunking, result merging and failure logging of both clients."""

    def __init__(
        self,
        urls: str | Sequence[str],
        *,
        token: str | None,
        retry: RetryPolicy,
        max_items_per_request: int,
        max_concurrency: int,
        raise_on_error: bool,
        warning_interval: float,
        replica_cooldown: float,
    ):
        if max_items_per_request < 1:
            raise ValueError(f"max_items_per_request must be >= 1, got {max_items_per_request}")
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1, got {max_concurrency}")
        self.urls = _normalize_urls(urls)
        self.retry = retry
        self.max_items_per_request = max_items_per_request
        self.max_concurrency = max_concurrency
        self.raise_on_error = raise_on_error
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._warnings = _WarningLimiter(warning_interval)
        self._replica_counter = itertools.count()
        self._replica_cooldown = replica_cooldown
        self._down_until: dict[str, float] = {}

    @property
    def attempts_per_chunk(self) -> int:
        # Every replica gets one try, so a dead replica's chunk always reaches the others.
        return max(self.retry.max_attempts, len(self.urls))

    def replica_order(self, chunk: _Chunk) -> list[str]:
        """Return the replicas in the order a chunk tries them: reachable ones first.

        A replica that failed to connect or timed out in the last ``replica_cooldown``
        seconds goes last, so each batch does not wait for its connect timeout again.
        """
        rotated = self.urls[chunk.first_replica :] + self.urls[: chunk.first_replica]
        now = time.monotonic()
        return sorted(rotated, key=lambda url: self._down_until.get(url, 0.0) > now)

    def record_success(self, url: str) -> None:
        self._down_until.pop(url, None)

    def record_failure(self, failure: _RetryableFailure) -> None:
        # Only transport failures mark a replica down: a 503 or 429 is a response from a
        # replica that is up, and its Retry-After already paces the retries.
        if failure.status_code is None:
            self._down_until[failure.url] = time.monotonic() + self._replica_cooldown

    def wait_before_attempt(self, attempt: int, retry_after: float | None) -> float | None:
        """Return the wait before ``attempt``, or None inside a round over the replicas."""
        if attempt == 0 or attempt % len(self.urls):
            return None
        return self.retry.wait_seconds(attempt // len(self.urls) - 1, retry_after)

    def build_body(
        self, items: list[ScoreItem], weights: Weights | None, options: ScoreOptions | None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"items": [item.model_dump(mode="json") for item in items]}
        # Only the fields the caller set are sent: the service keeps its defaults for the rest.
        if weights is not None:
            body["weights"] = weights.model_dump(mode="json", exclude_unset=True)
        if options is not None:
            body["options"] = options.model_dump(mode="json", exclude_unset=True)
        return body

    def prepare(
        self, items: Iterable[ScoreItem | Mapping[str, Any]]
    ) -> tuple[ScoreResult, list[_Chunk]]:
        """Validate the items and split the valid ones into chunks, one per request."""
        raw_items = list(items)
        result = ScoreResult(
            rewards=[None] * len(raw_items),
            components=[None] * len(raw_items),
            explanations=None,
            errors=[None] * len(raw_items),
        )
        valid: list[tuple[int, ScoreItem]] = []
        for index, raw in enumerate(raw_items):
            try:
                valid.append((index, _coerce_item(raw)))
            except ValidationError as error:
                if self.raise_on_error:
                    raise
                result.errors[index] = error
                self._warnings.log(
                    logging.WARNING,
                    "invalid-item",
                    "kg_reward client: item #%d is invalid and gets reward None: %s",
                    index,
                    error,
                )
        return result, self._split(valid)

    def _split(self, valid: list[tuple[int, ScoreItem]]) -> list[_Chunk]:
        if not valid:
            return []
        n_chunks = max(
            min(len(self.urls), len(valid)),
            math.ceil(len(valid) / self.max_items_per_request),
        )
        size = math.ceil(len(valid) / n_chunks)
        first = next(self._replica_counter)
        chunks = []
        for number, start in enumerate(range(0, len(valid), size)):
            part = valid[start : start + size]
            chunks.append(
                _Chunk(
                    indices=[index for index, _ in part],
                    items=[item for _, item in part],
                    first_replica=(first + number) % len(self.urls),
                )
            )
        return chunks

    def should_split(self, chunk: _Chunk, outcome: ScoreResponse | RewardClientError) -> bool:
        """Return whether a rejected chunk should be split to isolate the invalid items."""
        split = (
            isinstance(outcome, BadResponseError)
            and outcome.status_code in SPLIT_STATUS_CODES
            and len(chunk.items) > 1
            and not self.raise_on_error
        )
        if split:
            logger.debug("splitting a rejected chunk of %d items in halves", len(chunk.items))
        return split

    def merge(self, result: ScoreResult, outcomes: Iterable[ChunkOutcome]) -> ScoreResult:
        """Write each chunk's scores or error into ``result`` at the items' positions."""
        for chunk, outcome in outcomes:
            if isinstance(outcome, RewardClientError):
                if self.raise_on_error:
                    raise outcome
                for index in chunk.indices:
                    result.errors[index] = outcome
                self._log_failed_chunk(chunk, outcome)
                continue
            if outcome.explanations is not None and result.explanations is None:
                result.explanations = [None] * len(result.rewards)
            for position, index in enumerate(chunk.indices):
                result.rewards[index] = outcome.rewards[position]
                result.components[index] = outcome.components[position]
                if outcome.explanations is not None and result.explanations is not None:
                    result.explanations[index] = outcome.explanations[position]
        return result

    def log_retry(self, failure: _RetryableFailure, chunk: _Chunk, attempt: int) -> None:
        self._warnings.log(
            logging.INFO,
            f"retry:{failure.url}:{failure.status_code}",
            "kg_reward client: attempt %d/%d for %d items failed, retrying: %s",
            attempt + 1,
            self.attempts_per_chunk,
            len(chunk.items),
            failure,
        )

    def log_request(self, url: str, n_items: int, status: int | str, started: float) -> None:
        # DEBUG, because a trainer sends several requests per step.
        logger.debug(
            "POST %s items=%d status=%s duration=%.3fs",
            url,
            n_items,
            status,
            time.perf_counter() - started,
        )

    def _log_failed_chunk(self, chunk: _Chunk, error: RewardClientError) -> None:
        ids = [
            item.id or f"#{index}" for index, item in zip(chunk.indices, chunk.items, strict=True)
        ]
        shown = ", ".join(ids[:MAX_LOGGED_IDS])
        if len(ids) > MAX_LOGGED_IDS:
            shown += f", ... ({len(ids) - MAX_LOGGED_IDS} more)"
        self._warnings.log(
            logging.WARNING,
            f"failed:{type(error).__name__}:{error.url}:{error.status_code}",
            "kg_reward client: %d items get reward None (%s) because %s: %s",
            len(ids),
            shown,
            type(error).__name__,
            error,
        )

    def unavailable(self, chunk: _Chunk, failure: _RetryableFailure) -> ServiceUnavailableError:
        return ServiceUnavailableError(
            f"no replica scored {len(chunk.items)} items after {self.attempts_per_chunk} "
            f"attempts over {len(self.urls)} replicas; last error: {failure}",
            url=failure.url,
            status_code=failure.status_code,
        )


# --- sync client --------------------------------------------------------------------


class RewardClient:
    """Blocking client of ``POST /score``; thread-safe, one connection pool per instance.

    Use it as a context manager, or call ``close()``. Chunks of a batch go out from a
    thread pool of ``max_concurrency`` threads.
    """

    def __init__(
        self,
        urls: str | Sequence[str],
        *,
        token: str | None = None,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        limits: httpx.Limits = DEFAULT_LIMITS,
        retry: RetryPolicy | None = None,
        max_items_per_request: int = 64,
        max_concurrency: int = 8,
        raise_on_error: bool = False,
        warning_interval: float = 30.0,
        replica_cooldown: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ):
        self._core = _ClientCore(
            urls,
            token=token,
            retry=retry or RetryPolicy(),
            max_items_per_request=max_items_per_request,
            max_concurrency=max_concurrency,
            raise_on_error=raise_on_error,
            warning_interval=warning_interval,
            replica_cooldown=replica_cooldown,
        )
        self._http = httpx.Client(
            headers=self._core._headers, timeout=timeout, limits=limits, transport=transport
        )
        self._executor: ThreadPoolExecutor | None = None
        self._executor_lock = threading.Lock()

    @classmethod
    def from_settings(
        cls, settings: ClientSettings | None = None, **overrides: Any
    ) -> RewardClient:
        """Build a client from ``settings`` (default: the environment) and overrides."""
        settings = settings or ClientSettings()
        return cls(settings.urls, **{**settings.client_kwargs(), **overrides})

    @property
    def urls(self) -> list[str]:
        return list(self._core.urls)

    def score(
        self,
        items: Iterable[ScoreItem | Mapping[str, Any]],
        *,
        weights: Weights | None = None,
        options: ScoreOptions | None = None,
    ) -> ScoreResult:
        """Score ``items``; failed items get ``None`` unless ``raise_on_error`` is set."""
        result, chunks = self._core.prepare(items)
        if len(chunks) <= 1:
            outcomes = [self._score_chunk(chunk, weights, options) for chunk in chunks]
        else:
            executor = self._get_executor()
            outcomes = list(executor.map(lambda c: self._score_chunk(c, weights, options), chunks))
        return self._core.merge(result, itertools.chain.from_iterable(outcomes))

    def ready(self) -> dict[str, bool]:
        """Return, per replica, whether ``GET /readyz`` returned 200."""
        states = {}
        for url in self._core.urls:
            try:
                states[url] = self._http.get(f"{url}/readyz").status_code == 200
            except httpx.TransportError:
                states[url] = False
        return states

    def _score_chunk(
        self, chunk: _Chunk, weights: Weights | None, options: ScoreOptions | None
    ) -> list[ChunkOutcome]:
        outcome = self._send_chunk(chunk, weights, options)
        if not self._core.should_split(chunk, outcome):
            return [(chunk, outcome)]
        return [
            pair for half in chunk.halves() for pair in self._score_chunk(half, weights, options)
        ]

    def _send_chunk(
        self, chunk: _Chunk, weights: Weights | None, options: ScoreOptions | None
    ) -> ScoreResponse | RewardClientError:
        body = self._core.build_body(chunk.items, weights, options)
        failure: _RetryableFailure | None = None
        retry_after: float | None = None
        order = self._core.replica_order(chunk)
        for attempt in range(self._core.attempts_per_chunk):
            wait = self._core.wait_before_attempt(attempt, retry_after)
            if wait is not None:
                _sleep(wait)
                retry_after = None
            url = order[attempt % len(order)]
            try:
                response = self._post(url, body, len(chunk.items))
            except _RetryableFailure as error:
                failure = error
                self._core.record_failure(error)
                retry_after = _max_optional(retry_after, error.retry_after)
                self._core.log_retry(error, chunk, attempt)
            except BadResponseError as error:
                return error
            else:
                self._core.record_success(url)
                return response
        assert failure is not None
        return self._core.unavailable(chunk, failure)

    def _post(self, url: str, body: dict[str, Any], n_items: int) -> ScoreResponse:
        started = time.perf_counter()
        try:
            response = self._http.post(f"{url}/score", json=body)
        except httpx.TransportError as error:
            self._core.log_request(url, n_items, type(error).__name__, started)
            raise _transport_failure(error, url) from error
        self._core.log_request(url, n_items, response.status_code, started)
        return _read_response(response, url, n_items)

    def _get_executor(self) -> ThreadPoolExecutor:
        with self._executor_lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    max_workers=self._core.max_concurrency, thread_name_prefix="kg-reward-client"
                )
            return self._executor

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
        self._http.close()

    def __enter__(self) -> RewardClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


# --- async client -------------------------------------------------------------------


class AsyncRewardClient:
    """Asyncio client of ``POST /score``; chunks of a batch run under ``asyncio.gather``.

    Its connection pool belongs to the event loop of its first request: use one instance
    per event loop. Use it as an async context manager, or await ``aclose()``.
    """

    def __init__(
        self,
        urls: str | Sequence[str],
        *,
        token: str | None = None,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        limits: httpx.Limits = DEFAULT_LIMITS,
        retry: RetryPolicy | None = None,
        max_items_per_request: int = 64,
        max_concurrency: int = 8,
        raise_on_error: bool = False,
        warning_interval: float = 30.0,
        replica_cooldown: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ):
        self._core = _ClientCore(
            urls,
            token=token,
            retry=retry or RetryPolicy(),
            max_items_per_request=max_items_per_request,
            max_concurrency=max_concurrency,
            raise_on_error=raise_on_error,
            warning_interval=warning_interval,
            replica_cooldown=replica_cooldown,
        )
        self._http = httpx.AsyncClient(
            headers=self._core._headers, timeout=timeout, limits=limits, transport=transport
        )
        self._semaphore = asyncio.Semaphore(max_concurrency)

    @classmethod
    def from_settings(
        cls, settings: ClientSettings | None = None, **overrides: Any
    ) -> AsyncRewardClient:
        """Build a client from ``settings`` (default: the environment) and overrides."""
        settings = settings or ClientSettings()
        return cls(settings.urls, **{**settings.client_kwargs(), **overrides})

    @property
    def urls(self) -> list[str]:
        return list(self._core.urls)

    async def score(
        self,
        items: Iterable[ScoreItem | Mapping[str, Any]],
        *,
        weights: Weights | None = None,
        options: ScoreOptions | None = None,
    ) -> ScoreResult:
        """Score ``items``; failed items get ``None`` unless ``raise_on_error`` is set."""
        result, chunks = self._core.prepare(items)
        outcomes = await asyncio.gather(
            *(self._score_chunk(chunk, weights, options) for chunk in chunks)
        )
        return self._core.merge(result, itertools.chain.from_iterable(outcomes))

    async def ready(self) -> dict[str, bool]:
        """Return, per replica, whether ``GET /readyz`` returned 200."""
        states = {}
        for url in self._core.urls:
            try:
                states[url] = (await self._http.get(f"{url}/readyz")).status_code == 200
            except httpx.TransportError:
                states[url] = False
        return states

    async def _score_chunk(
        self, chunk: _Chunk, weights: Weights | None, options: ScoreOptions | None
    ) -> list[ChunkOutcome]:
        outcome = await self._send_chunk(chunk, weights, options)
        if not self._core.should_split(chunk, outcome):
            return [(chunk, outcome)]
        halves = await asyncio.gather(
            *(self._score_chunk(half, weights, options) for half in chunk.halves())
        )
        return [pair for pairs in halves for pair in pairs]

    async def _send_chunk(
        self, chunk: _Chunk, weights: Weights | None, options: ScoreOptions | None
    ) -> ScoreResponse | RewardClientError:
        body = self._core.build_body(chunk.items, weights, options)
        failure: _RetryableFailure | None = None
        retry_after: float | None = None
        order = self._core.replica_order(chunk)
        for attempt in range(self._core.attempts_per_chunk):
            wait = self._core.wait_before_attempt(attempt, retry_after)
            if wait is not None:
                await _async_sleep(wait)
                retry_after = None
            url = order[attempt % len(order)]
            try:
                async with self._semaphore:
                    response = await self._post(url, body, len(chunk.items))
            except _RetryableFailure as error:
                failure = error
                self._core.record_failure(error)
                retry_after = _max_optional(retry_after, error.retry_after)
                self._core.log_retry(error, chunk, attempt)
            except BadResponseError as error:
                return error
            else:
                self._core.record_success(url)
                return response
        assert failure is not None
        return self._core.unavailable(chunk, failure)

    async def _post(self, url: str, body: dict[str, Any], n_items: int) -> ScoreResponse:
        started = time.perf_counter()
        try:
            response = await self._http.post(f"{url}/score", json=body)
        except httpx.TransportError as error:
            self._core.log_request(url, n_items, type(error).__name__, started)
            raise _transport_failure(error, url) from error
        self._core.log_request(url, n_items, response.status_code, started)
        return _read_response(response, url, n_items)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncRewardClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()


def _max_optional(first: float | None, second: float | None) -> float | None:
    if first is None:
        return second
    if second is None:
        return first
    return max(first, second)
