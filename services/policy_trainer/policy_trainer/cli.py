"""The ``policy-trainer`` command line.

Each stage lives in ``policy_trainer.commands.<name>`` and provides
``register(subparsers)`` (adds its parser and sets ``func``). torch and transformers are
imported inside the stage so that ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from policy_trainer.errors import ConfigError

STAGES = ("synthesize", "sft", "mine", "grpo", "evaluate", "demo")

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="policy-trainer",
        description="SFT warm-up, hard example mining and GRPO with knowledge-graph rewards.",
    )
    parser.add_argument(
        "--log-level",
        default="INFO",
        type=str.upper,
        choices=LOG_LEVELS,
        help="Logging level: DEBUG, INFO, WARNING or ERROR (any case).",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="STAGE")
    for name in STAGES:
        importlib.import_module(f"policy_trainer.commands.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return int(args.func(args) or 0)
    except ConfigError as error:
        print(f"policy-trainer {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
