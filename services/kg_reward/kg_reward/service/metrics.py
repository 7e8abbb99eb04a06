"""Prometheus metrics of the reward service.

With several uvicorn workers, ``kg-reward serve`` sets ``PROMETHEUS_MULTIPROC_DIR`` before
the workers start, so every worker writes its samples to files there and ``/metrics``
sums all workers, whichever worker serves the scrape. Without that variable (one
worker, the app run in-process, or ``uvicorn --workers N`` started by hand) each scrape
shows only the worker that serves it. The variable must be set before
``prometheus_client`` is first imported.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

REQUESTS = Counter(
    "kg_reward_requests", "HTTP requests answered, by route and status code.", ["route", "status"]
)
ERRORS = Counter(
    "kg_reward_errors",
    "HTTP responses with a status code of 400 or more, by route and status code.",
    ["route", "status"],
)
ITEMS = Counter("kg_reward_items", "Items scored or texts extracted, by route.", ["route"])
LATENCY = Histogram(
    "kg_reward_request_duration_seconds",
    "Time from request start to the end of the response, by route.",
    ["route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)
CACHE_HITS = Counter(
    "kg_reward_reference_cache_hits", "Distinct references per batch found in the cache."
)
CACHE_MISSES = Counter(
    "kg_reward_reference_cache_misses", "Distinct references per batch that were extracted."
)


def render_metrics() -> tuple[bytes, str]:
    """Return the exposition text and its content type."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
