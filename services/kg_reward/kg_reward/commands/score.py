"""``kg-reward score``: score a JSONL file in-process, as POST /score would.

    kg-reward score items.jsonl --output scores.jsonl --preset chexpo --explain

Each input line is one item, ``{"id", "completion", "reference", "reference_answer"}``
(``id`` and ``reference_answer`` optional). Each output line is ``{"id", "reward",
"components"}``, plus ``"explanation"`` with ``--explain``, in input order. ``-`` reads
stdin. Defaults for weights and options come from ``KG_REWARD_WEIGHTS`` and
``KG_REWARD_OPTIONS`` like the service's; the flags override single fields.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import IO, Any

from kg_reward.errors import CommandError

logger = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "score",
        help="Score completions of a JSONL file against their references, in-process.",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    parser.add_argument("input", help="JSONL file of items, or - for stdin.")
    parser.add_argument(
        "--output", type=Path, default=None, help="JSONL to write (default stdout)."
    )
    weights = parser.add_argument_group("weights (default: KG_REWARD_WEIGHTS or 1, 0.5, 0.5, 0)")
    for name in ("answer", "entity", "relation", "format"):
        weights.add_argument(f"--{name}-weight", type=float, default=None, metavar="W")
    options = parser.add_argument_group("options (default: KG_REWARD_OPTIONS)")
    options.add_argument(
        "--preset",
        choices=["chexpo"],
        default=None,
        help="chexpo: the published reward; overrides the other options.",
    )
    options.add_argument("--answer-mode", choices=["exact", "set", "overlap"], default=None)
    options.add_argument("--metric", choices=["jaccard", "f1", "fbeta"], default=None)
    options.add_argument("--beta", type=float, default=None, help="Recall weight of fbeta.")
    options.add_argument("--match", choices=["canonical", "surface"], default=None)
    options.add_argument(
        "--empty-score",
        type=float,
        default=None,
        help="Similarity when both graphs are empty, in [0, 1].",
    )
    options.add_argument("--explain", action="store_true", help="Add matched/missing/extra items.")
    parser.add_argument(
        "--pipeline",
        type=Path,
        default=None,
        help="Saved pipeline directory (default: KG_REWARD_PIPELINE_PATH or packaged).",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=256,
        help="Items scored per extraction pass (default 256).",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from kg_reward.errors import InputError
    from kg_reward.service.app import load_scorer
    from kg_reward.service.settings import describe_settings_error, read_settings
    from kg_schema.scoring import ScoreOptions, Weights

    if args.batch_size < 1:
        raise CommandError(f"--batch-size must be at least 1, got {args.batch_size}")
    try:
        settings = read_settings()
    except ValueError as error:
        raise CommandError(f"invalid settings: {describe_settings_error(error)}") from error
    try:
        weights = Weights(**{**settings.weights.model_dump(), **_weight_flags(args)})
        options = ScoreOptions(**{**settings.options.model_dump(), **_option_flags(args)})
    except ValidationError as error:
        raise CommandError(f"invalid weights or options: {_describe(error)}") from error
    if args.pipeline is not None:
        if not args.pipeline.is_dir():
            raise CommandError(f"pipeline directory not found: {args.pipeline}")
        settings.pipeline_path = args.pipeline

    _check_output(args.output)
    items = list(_read_items(args.input))
    try:
        scorer = load_scorer(settings)
    except (InputError, OSError) as error:
        raise CommandError(f"cannot load pipeline {settings.pipeline_path}: {error}") from error
    with _open_output(args.output) as output:
        for start in range(0, len(items), args.batch_size):
            batch = [item for _, item in items[start : start + args.batch_size]]
            response = scorer.score(batch, weights=weights, options=options)
            for position, item in enumerate(batch):
                record: dict[str, Any] = {
                    "id": item.id,
                    "reward": response.rewards[position],
                    "components": response.components[position].model_dump(),
                }
                if response.explanations is not None:
                    record["explanation"] = response.explanations[position].model_dump()
                output.write(json.dumps(record) + "\n")
    logger.info("scored %d items from %s", len(items), args.input)
    return 0


def _weight_flags(args: argparse.Namespace) -> dict[str, float]:
    names = ("answer", "entity", "relation", "format")
    return {
        name: getattr(args, f"{name}_weight")
        for name in names
        if getattr(args, f"{name}_weight") is not None
    }


def _option_flags(args: argparse.Namespace) -> dict[str, Any]:
    names = ("preset", "answer_mode", "metric", "beta", "match", "empty_score")
    flags = {name: getattr(args, name) for name in names if getattr(args, name) is not None}
    if args.explain:
        flags["explain"] = True
    return flags


def _read_items(source: str) -> Iterator[tuple[int, Any]]:
    """Yield (line number, ScoreItem); raise CommandError naming the first bad line."""
    from pydantic import ValidationError

    from kg_reward.service.settings import EXTRACTOR_MAX_TEXT_CHARS
    from kg_schema.scoring import ScoreItem

    with _open_input(source) as stream:
        for number, line in _numbered_lines(stream, source):
            if not line.strip():
                continue
            try:
                item = ScoreItem.model_validate(json.loads(line, parse_constant=_reject_constant))
            except json.JSONDecodeError as error:
                raise CommandError(f"{source} line {number}: invalid JSON ({error.msg})") from error
            except ValidationError as error:
                raise CommandError(f"{source} line {number}: {_describe(error)}") from error
            for field in ("completion", "reference", "reference_answer"):
                text = getattr(item, field)
                if text is not None and len(text) > EXTRACTOR_MAX_TEXT_CHARS:
                    raise CommandError(
                        f"{source} line {number}: {field} has {len(text)} characters, more "
                        f"than the extractor's limit of {EXTRACTOR_MAX_TEXT_CHARS}; shorten it"
                    )
            yield number, item


def _numbered_lines(stream: IO[str], source: str) -> Iterator[tuple[int, str]]:
    # The text stream decodes ahead in blocks, so a decoding error cannot name its line.
    try:
        yield from enumerate(stream, start=1)
    except UnicodeDecodeError as error:
        raise CommandError(
            f"{source} is not UTF-8 text ({error.reason}); save the file as UTF-8"
        ) from None


def _reject_constant(name: str) -> Any:
    raise json.JSONDecodeError(f"{name} is not valid JSON", name, 0)


def _describe(error: Any) -> str:
    return "; ".join(
        f"{'.'.join(str(part) for part in item['loc']) or 'line'}: "
        f"{str(item['msg']).removeprefix('Value error, ')}"
        for item in error.errors()
    )


def _open_input(source: str) -> AbstractContextManager[IO[str]]:
    if source == "-":
        return nullcontext(sys.stdin)
    path = Path(source)
    if path.is_dir():
        raise CommandError(f"input {source} is a directory; pass a JSONL file")
    if not path.is_file():
        raise CommandError(f"input file not found: {source}")
    try:
        return path.open(encoding="utf-8")
    except OSError as error:
        raise CommandError(f"cannot read input {source}: {error.strerror}") from None


def _check_output(path: Path | None) -> None:
    """Reject an unusable --output before the pipeline loads."""
    if path is None:
        return
    if path.is_dir():
        raise CommandError(f"--output {path} is a directory; pass a file path")
    if not path.parent.is_dir():
        raise CommandError(f"output directory not found: {path.parent}")


def _open_output(path: Path | None) -> AbstractContextManager[IO[str]]:
    if path is None:
        return nullcontext(sys.stdout)
    _check_output(path)
    try:
        return path.open("w", encoding="utf-8")
    except OSError as error:
        raise CommandError(f"cannot write --output {path}: {error.strerror}") from None
