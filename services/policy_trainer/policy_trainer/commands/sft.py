"""``policy-trainer sft``: LoRA warm-up on chat-format QA with the four tag tokens."""

from __future__ import annotations

import argparse

from policy_trainer.config import add_config_arguments, load_config
from policy_trainer.sft import SFTStageConfig


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "sft",
        help="SFT warm-up: LoRA + lm_head on chat QA; writes <output_dir>/final/.",
        description="Fine-tune the base model on chat-format JSONL so it learns the "
                    "<think>/<answer> format, then save the merged model to <output_dir>/final/.",
    )
    add_config_arguments(parser, SFTStageConfig)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = load_config(SFTStageConfig, args)

    from policy_trainer.sft import run_sft

    final_dir = run_sft(config)
    print(final_dir)
    return 0
