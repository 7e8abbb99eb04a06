"""``policy-trainer synthesize``: grounded question-answer items from radiology reports.

    policy-trainer synthesize --config policy_trainer/configs/synthesize.yaml

Writes ``<output_dir>/{train,dev,test}.jsonl``, ``summary.json`` and ``config.yaml``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from policy_trainer.config import add_config_arguments, dump_config, load_config
from policy_trainer.synthesis.config import SynthesizeConfig


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "synthesize",
        help="Write basic, region and comparison questions with rationales from reports.",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_arguments(parser, SynthesizeConfig)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = load_config(SynthesizeConfig, args)

    from policy_trainer.synthesis.pipeline import synthesize

    summary = synthesize(config)
    output_dir = Path(config.output_dir)
    dump_config(config, output_dir / "config.yaml")

    total = summary["total"]
    print(json.dumps({
        "output_dir": str(output_dir),
        "reports": summary["reports_read"],
        "items": total["items"],
        "per_kind": total["per_kind"],
        "yes_share": total["yes_share"],
        "per_split": {split: counts["items"] for split, counts in summary["splits"].items()},
    }))
    return 0
