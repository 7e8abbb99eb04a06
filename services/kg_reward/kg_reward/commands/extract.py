"""``kg-reward extract``: knowledge graphs of texts, one JSON line per input line.

    kg-reward extract [FILE|-] [--output FILE] [--format graph|rexkg] [--batch-size N]

Each input line is a JSON object ``{"id": ..., "text": ...}`` (``id`` optional) or, when it does
not start with ``{``, plain text whose id is its line number. Blank lines are skipped. The
output has one JSON object per input text: ``{"id", "entities", "relations"}``, or ReXKG's
layout with ``--format rexkg``. The whole input is checked before extraction starts, so a bad
line stops the command (exit code 2, naming the line) before anything is written.

ReXKG's layout maps each entity text to one label, so entities that share a text collapse into
the first one's label ("No effusion on the right. Small left effusion." keeps only
``{"effusion": "disorder_notpresent"}``), and relations name entities by text only. The command
keeps that layout and logs one WARNING per document that lost a label this way, naming the
texts; ``--format graph`` keeps every entity.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from kg_reward.errors import CommandError

if TYPE_CHECKING:
    from kg_schema import KnowledgeGraph

logger = logging.getLogger(__name__)

FORMATS = ("graph", "rexkg")
# Texts named in one collapse warning; the count covers all of them.
MAX_TEXTS_NAMED = 5


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
    if args.output is not None and args.output.is_dir():
        raise CommandError(f"--output {args.output} is a directory; pass a file path")
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
            if args.format == "rexkg":
                warn_collapsed_texts(graph)
                record = graph.to_rexkg()
            else:
                record = graph.model_dump()
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    return 0


def collapsed_texts(graph: KnowledgeGraph) -> list[str]:
    """Return the entity texts that carry more than one label in ``graph``, in text order."""
    labels: dict[str, set[str]] = defaultdict(set)
    for entity in graph.entities:
        labels[entity.text].add(entity.label)
    return [text for text, found in labels.items() if len(found) > 1]


def warn_collapsed_texts(graph: KnowledgeGraph) -> None:
    """Log a WARNING when ReXKG's text -> label layout drops labels of ``graph``."""
    texts = collapsed_texts(graph)
    if not texts:
        return
    named = ", ".join(repr(text) for text in texts[:MAX_TEXTS_NAMED])
    more = f" and {len(texts) - MAX_TEXTS_NAMED} more" if len(texts) > MAX_TEXTS_NAMED else ""
    logger.warning(
        "document %s: %d entity text(s) have mentions with different labels, and the rexkg "
        "format keeps only the first label of each, so its relations may describe the other "
        "mention: %s%s; use --format graph to keep every entity",
        graph.id,
        len(texts),
        named,
        more,
    )


def read_inputs(source: str) -> tuple[list[str], list[str]]:
    """Read ids and texts, raising CommandError that names the first bad line."""
    from kg_reward.extraction import MAX_TEXT_CHARS
    from kg_schema.scoring import check_unicode

    ids: list[str] = []
    texts: list[str] = []
    name = "<stdin>" if source == "-" else source
    for number, line in _read_lines(source):
        if not line.strip():
            continue
        record_id, text = _parse_line(line, number, name)
        try:
            check_unicode(text)
        except ValueError as error:
            raise CommandError(f"{name}:{number}: text {error}") from None
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
