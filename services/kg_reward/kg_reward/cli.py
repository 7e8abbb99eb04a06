"""The ``kg-reward`` command line.

Each subcommand lives in ``kg_reward.commands.<name>`` and provides
``register(subparsers)`` (adds its parser and sets ``func``) and a ``run(args) -> int``.
Heavy imports (spaCy, uvicorn) happen inside ``run`` so that ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from kg_reward.errors import CommandError

SUBCOMMANDS = ("extract", "label", "score", "serve")

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kg-reward",
        description="Radiology knowledge-graph extraction and process rewards.",
    )
    parser.add_argument(
        "--log-level",
        default="INFO",
        type=str.upper,
        choices=LOG_LEVELS,
        help="Logging level: DEBUG, INFO, WARNING or ERROR (any case).",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(f"kg_reward.commands.{name}").register(subparsers)
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
    except CommandError as error:
        # Bad input ends with exit code 2 and one line, as argparse does for bad flags.
        print(f"kg-reward {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
