"""``kg-reward extract``: knowledge graphs of texts, one JSON line per input line.

    kg-reward extract [FILE|-] [--output FILE] [--format graph|rexkg] [--batch-size N]

Each input line is a JSON object ``{"id": ..., "text": ...}`` (``id`` optional) or, when it does
not start with ``{``, plain text whose id is its line number. Blank lines are skipped. The
output has one JSON object per input text: ``{"id", "entities", "relations"}``, or ReXKG's
layout with ``--format rexkg``. The whole input is checked before extraction starts, so a bad
line stops the command (exit code 2, naming the line) before anything is written.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from kg_reward.errors import CommandError

FORMATS = ("graph", "rexkg")


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "extract",
        help="Extract knowledge graphs from JSONL or plain-text lines.",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    parser.add_argument(
        "input",
        nargs="?",
        default="-",
        help="Input file of JSONL or plain-text lines; '-' or nothing reads standard input.",
    )
    parser.add_argument(
        "--output", type=Path, default=None, help="File to write; standard output by default."
    )
    parser.add_argument(
        "--format",
        default="graph",
        help="graph: {id, entities, relations} as in kg_schema; rexkg: ReXKG's layout.",
    )
    parser.add_argument(
        "--batch-size", type=int, default=64, help="Texts per spaCy batch (default 64)."
    )
    parser.add_argument(
        "--pipeline", type=Path, default=None, help="Saved pipeline directory (default: packaged)."
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.format not in FORMATS:
        raise CommandError(f"unknown --format {args.format!r}; use one of {', '.join(FORMATS)}")
    if args.batch_size < 1:
        raise CommandError(f"--batch-size must be >= 1, got {args.batch_size}")
    ids, texts = read_inputs(args.input)

    import kg_reward
    from kg_reward.errors import InputError

    try:
        extractor = kg_reward.load(args.pipeline)
    except (InputError, OSError) as error:
        raise CommandError(f"cannot load pipeline {args.pipeline}: {error}") from error
    graphs = extractor.extract(texts, ids=ids, batch_size=args.batch_size)

    with _open_output(args.output) as handle:
        for graph in graphs:
            record = graph.to_rexkg() if args.format == "rexkg" else graph.model_dump()
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    return 0


def read_inputs(source: str) -> tuple[list[str], list[str]]:
    """Read ids and texts, raising CommandError that names the first bad line."""
    from kg_reward.extraction import MAX_TEXT_CHARS

    ids: list[str] = []
    texts: list[str] = []
    name = "<stdin>" if source == "-" else source
    for number, line in _read_lines(source):
        if not line.strip():
            continue
        record_id, text = _parse_line(line, number, name)
        if len(text) > MAX_TEXT_CHARS:
            raise CommandError(
                f"{name}:{number}: text has {len(text)} characters, more than the limit of "
                f"{MAX_TEXT_CHARS}; split it into shorter texts"
            )
        ids.append(record_id)
        texts.append(text)
    return ids, texts


def _read_lines(source: str) -> Iterator[tuple[int, str]]:
    if source == "-":
        yield from enumerate((line.rstrip("\n") for line in sys.stdin), start=1)
        return
    path = Path(source)
    try:
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                yield number, line.rstrip("\n")
    except FileNotFoundError:
        raise CommandError(f"input file not found: {source}") from None
    except IsADirectoryError:
        raise CommandError(f"input {source} is a directory; pass a JSONL or text file") from None
    except PermissionError:
        raise CommandError(f"input file {source} is not readable (permission denied)") from None
    except UnicodeDecodeError as error:
        raise CommandError(f"input file {source} is not UTF-8 text ({error.reason})") from None


def _parse_line(line: str, number: int, name: str) -> tuple[str, str]:
    if not line.lstrip().startswith("{"):
        return str(number), line
    try:
        record: Any = json.loads(line)
    except json.JSONDecodeError as error:
        raise CommandError(f"{name}:{number}: invalid JSON ({error.msg})") from None
    if not isinstance(record, dict):
        raise CommandError(f"{name}:{number}: expected a JSON object with a 'text' field")
    if "text" not in record:
        raise CommandError(f"{name}:{number}: missing field 'text'")
    text = record["text"]
    if not isinstance(text, str):
        raise CommandError(
            f"{name}:{number}: field 'text' must be a string, got {type(text).__name__}"
        )
    record_id = record.get("id", number)
    if not isinstance(record_id, (str, int)) or isinstance(record_id, bool):
        raise CommandError(f"{name}:{number}: field 'id' must be a string or an integer")
    return str(record_id), text


@contextmanager
def _open_output(path: Path | None) -> Iterator[IO[str]]:
    if path is None:
        yield sys.stdout
        return
    try:
        handle = path.open("w", encoding="utf-8")
    except OSError as error:
        raise CommandError(f"cannot write --output {path}: {error.strerror}") from None
    with handle:
        yield handle
