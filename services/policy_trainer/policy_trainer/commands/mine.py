r"""``policy-trainer mine``: hard example mining with the SFT model.

    policy-trainer mine --config policy_trainer/configs/mine.yaml \
        --model_path runs/sft/final --pool_path runs/synthesis/train.jsonl

Writes ``<output_dir>/mined.jsonl`` (the first strategy at the first size), one
``<strategy>_<size>.jsonl`` per set, ``mining_report.json``, ``confidence_histogram.png``,
``sample_predictions.jsonl`` and ``config.yaml``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from policy_trainer.config import add_config_arguments, dump_config, load_config
from policy_trainer.mining.config import MineConfig


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "mine",
        help="Find hard examples with the SFT model and build training sets around them.",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_arguments(parser, MineConfig)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = load_config(MineConfig, args)

    from policy_trainer.mining.pipeline import mine

    output_dir = Path(config.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    dump_config(config, output_dir / "config.yaml")
    report = mine(config)
    print(json.dumps({
        "output_dir": str(output_dir),
        "sample_items": report["sample_items"],
        "seeds": report["seeds"],
        "seeds_wrong": report["seeds_wrong"],
        "seeds_low_confidence": report["seeds_low_confidence"],
        "sets": {f"{s['strategy']}_{s['requested']}": s["size"] for s in report["sets"]},
    }))
    return 0
