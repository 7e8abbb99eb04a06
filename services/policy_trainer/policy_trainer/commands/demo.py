"""``policy-trainer demo``: the whole pipeline end to end with a running reward service.

    make demo                                   # DEMO_SCALE=small, about 30 min on 2 cores
    DEMO_SCALE=tiny policy-trainer demo         # tiny local model, a few minutes
    policy-trainer demo --reward-url http://reward-lb:8080   # use a running service

Starts ``kg-reward serve`` on 127.0.0.1 unless ``--reward-url`` is given, then runs
synthesize, sft, mine, grpo and evaluate (SFT and GRPO models) as subprocesses and writes
``<runs-dir>/<timestamp>/report.md`` with plots. Each stage logs to ``logs/<stage>.log``
in the run folder; a failed stage ends the demo with one line naming it and its log.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path
from types import FrameType

from policy_trainer.errors import ConfigError

SCALE_ENV = "DEMO_SCALE"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from policy_trainer.demo_plan import SCALE_NAMES

    parser = subparsers.add_parser(
        "demo",
        help="Run synthesize, sft, mine, grpo and evaluate end to end and write a report.",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--scale", default=None, metavar="|".join(SCALE_NAMES),
        help=f"Size of the run: {', '.join(SCALE_NAMES)} (default: ${SCALE_ENV} or small).",
    )
    parser.add_argument(
        "--reward-url", default=None,
        help="Base URL of a running kg_reward service or load balancer; when absent the demo "
             "starts its own on 127.0.0.1.",
    )
    parser.add_argument(
        "--runs-dir", type=Path, default=Path("runs"),
        help="Folder that receives the run folder <timestamp>/ (default: runs).",
    )
    parser.add_argument(
        "--workers", type=int, default=2,
        help="Worker processes of the service the demo starts (default: 2).",
    )
    parser.add_argument(
        "--ready-timeout", type=float, default=300.0,
        help="Seconds to wait for the service's /readyz before giving up (default: 300).",
    )
    parser.add_argument(
        "--reports", type=Path, default=None,
        help="NLMCXR_reports.tgz to synthesize from (default: the copy in torchxrayvision).",
    )
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="STAGE.FIELD=VALUE",
        help="Override one stage config field, for example --set grpo.max_steps=10; "
             "repeatable. STAGE is synthesize, sft, mine, grpo or evaluate.",
    )
    parser.add_argument(
        "--quiet", action="store_true",
        help="Keep the stages' output in their log files only, not on the terminal.",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from policy_trainer.demo import DemoError, DemoOptions, run_demo
    from policy_trainer.demo_plan import SCALE_NAMES

    scale = args.scale or os.environ.get(SCALE_ENV) or "small"
    if scale not in SCALE_NAMES:
        raise ConfigError(
            f"scale {scale!r} (from --scale or ${SCALE_ENV}) is not one of "
            f"{', '.join(SCALE_NAMES)}"
        )
    if args.workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {args.workers}")
    if args.ready_timeout <= 0:
        raise ConfigError(f"--ready-timeout must be positive, got {args.ready_timeout}")
    if args.reports is not None and not args.reports.is_file():
        raise ConfigError(f"--reports {args.reports} is not a file; pass NLMCXR_reports.tgz")

    options = DemoOptions(
        scale=scale, runs_dir=args.runs_dir, reward_url=args.reward_url,
        workers=args.workers, ready_timeout=args.ready_timeout, reports=args.reports,
        overrides=args.overrides, echo=not args.quiet, log_level=args.log_level.upper(),
    )
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        report = run_demo(options, progress=_say)
    except DemoError as error:
        print(f"policy-trainer demo: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("policy-trainer demo: interrupted; the stage and the service were stopped",
              file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    print(report)
    return 0


def _say(message: str) -> None:
    print(f"demo: {message}", file=sys.stderr, flush=True)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    # `docker stop` sends SIGTERM; stop the stage and the service as Ctrl-C does.
    raise KeyboardInterrupt
