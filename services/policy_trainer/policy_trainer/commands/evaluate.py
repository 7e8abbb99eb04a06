"""``policy-trainer evaluate``: greedy answers on a test split, scored by the service."""

from __future__ import annotations

import argparse
import json

from policy_trainer.config import add_config_arguments, load_config
from policy_trainer.evaluate import EvaluateConfig


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "evaluate",
        help="Answer accuracy, entity/relation rewards, precision and recall on a test split.",
        description="Generate greedy answers on a test JSONL, score them with the kg_reward "
                    "service (explain=true) and write the metrics JSON.",
    )
    add_config_arguments(parser, EvaluateConfig)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = load_config(EvaluateConfig, args)

    from policy_trainer.evaluate import run_evaluate

    metrics = run_evaluate(config)
    print(json.dumps(metrics, indent=2))
    return 0
