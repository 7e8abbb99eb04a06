"""``kg-reward serve``: run the reward service with uvicorn.

    kg-reward serve --host 127.0.0.1 --port 8000 --workers 2

Everything else comes from ``KG_REWARD_*`` environment variables (see
``kg_reward.service.settings``). Each worker builds the app with the factory
``kg_reward.service.app:create_app`` and loads the pipeline once.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from kg_reward.errors import CommandError

logger = logging.getLogger(__name__)

APP_FACTORY = "kg_reward.service.app:create_app"


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "serve",
        help="Run the reward service (POST /score, /extract, /openrlhf/reward).",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    parser.add_argument("--host", default="127.0.0.1", help="Address to bind (default 127.0.0.1).")
    parser.add_argument("--port", type=int, default=8000, help="TCP port to bind (default 8000).")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="Worker processes; each loads its own pipeline (default 1).",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from kg_reward.service.settings import describe_settings_error, read_settings

    if args.workers < 1:
        raise CommandError(f"--workers must be at least 1, got {args.workers}")
    if not 0 <= args.port <= 65535:
        raise CommandError(f"--port must be between 0 and 65535, got {args.port}")
    try:
        settings = read_settings()
    except ValueError as error:
        raise CommandError(f"invalid settings: {describe_settings_error(error)}") from error

    # With several workers, uvicorn (0.55) exits with status 0 when they fail to start, so
    # the path is checked up front.
    if settings.pipeline_path is not None and not (settings.pipeline_path / "config.cfg").is_file():
        raise CommandError(
            f"KG_REWARD_PIPELINE_PATH={settings.pipeline_path} is not a saved pipeline "
            "directory (no config.cfg); save one with Extractor.to_disk(path)"
        )

    metrics_dir = _prepare_metrics_dir(args.workers)
    try:
        uvicorn.run(
            APP_FACTORY,
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            log_config=log_config(settings.log_level),
            access_log=False,
            timeout_graceful_shutdown=10,
        )
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0


def _prepare_metrics_dir(workers: int) -> Path | None:
    """Give several workers one Prometheus directory; return it if this call created it.

    A directory that the caller set in PROMETHEUS_MULTIPROC_DIR is emptied of old
    samples instead, as prometheus_client requires between runs.
    """
    existing = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if existing:
        if not Path(existing).is_dir():
            raise CommandError(
                f"PROMETHEUS_MULTIPROC_DIR={existing} is not a directory; create it or unset "
                "the variable"
            )
        for stale in Path(existing).glob("*.db"):
            stale.unlink()
        return None
    if workers == 1:
        return None
    created = Path(tempfile.mkdtemp(prefix="kg-reward-metrics-"))
    # Set before the workers start, so prometheus_client picks multiprocess mode in each.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(created)
    return created


def log_config(level: str) -> dict[str, Any]:
    """Return the logging configuration that uvicorn applies in every worker."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "default": {"format": "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"}
        },
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "default",
                "stream": "ext://sys.stderr",
            }
        },
        "loggers": {
            "uvicorn": {"handlers": ["stderr"], "level": level, "propagate": False},
            "kg_reward": {"handlers": ["stderr"], "level": level, "propagate": False},
        },
    }
