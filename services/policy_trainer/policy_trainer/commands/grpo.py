"""``policy-trainer grpo``: GRPO with knowledge-graph rewards from the kg_reward service."""

from __future__ import annotations

import argparse

from policy_trainer.config import add_config_arguments, load_config
from policy_trainer.grpo import GRPOStageConfig


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "grpo",
        help="GRPO on the SFT model with rewards from the kg_reward service.",
        description="Train the SFT model with GRPO; rewards (answer, entity, relation) come "
                    "from POST /score of the kg_reward service. Writes completions.jsonl, "
                    "log_history.json, checkpoints and <output_dir>/final/.",
    )
    add_config_arguments(parser, GRPOStageConfig)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = load_config(GRPOStageConfig, args)

    from policy_trainer.grpo import run_grpo

    final_dir = run_grpo(config)
    print(final_dir)
    return 0
