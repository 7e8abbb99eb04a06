"""Readers for the packaged data files: lexicons, cue lists, relation cues and section titles.

Every reader raises ``ValueError`` naming the file, the line and the fix, so that a broken line
appended to a data file stops the pipeline at build time instead of changing results silently.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, get_type_hints

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
LEXICON_DIR = DATA_DIR / "lexicons"
CUES_PATH = DATA_DIR / "context" / "cues.jsonl"
RELATION_CUES_PATH = DATA_DIR / "relations" / "cues.jsonl"
SECTION_TITLES_PATH = DATA_DIR / "sections" / "section_titles.csv"
PLURALS_PATH = DATA_DIR / "lexicons" / "irregular_plurals.csv"


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """Yield one object per non-blank line; lines starting with ``#`` are comments."""
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            stripped = line.strip()
            if not stripped or stripped.startswith("#"):
                continue
            try:
                record = json.loads(stripped)
            except json.JSONDecodeError as error:
                raise ValueError(
                    f"{path}:{number}: invalid JSON ({error.msg}); write one JSON object per line"
                ) from None
            if not isinstance(record, dict):
                raise ValueError(f"{path}:{number}: expected a JSON object, got {stripped[:40]!r}")
            record["_where"] = f"{path.name}:{number}"
            yield record


def read_lexicon_dir(directory: Path = LEXICON_DIR) -> list[dict[str, Any]]:
    """Read every ``*.jsonl`` lexicon file of ``directory`` in name order."""
    entries: list[dict[str, Any]] = []
    for path in sorted(directory.glob("*.jsonl")):
        entries.extend(read_jsonl(path))
    return entries


def read_irregular_plurals(path: Path = PLURALS_PATH) -> dict[str, str]:
    """Return the singular -> plural table for words that English rules inflect wrongly."""
    with path.open(encoding="utf-8", newline="") as handle:
        return {row["singular"]: row["plural"] for row in csv.DictReader(handle)}


def read_section_titles(path: Path = SECTION_TITLES_PATH) -> list[dict[str, Any]]:
    """Return rows ``{"title", "section", "any_case"}`` of the section title table."""
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [
        {
            "title": row["title"],
            "section": row["section"],
            "any_case": row["any_case"].strip().lower() == "true",
        }
        for row in rows
    ]


def strip_locations(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Drop the ``_where`` bookkeeping key before records are serialized."""
    return [{k: v for k, v in record.items() if k != "_where"} for record in records]


def resolve_annotations(function: Any) -> None:
    """Replace string annotations of ``function`` with the objects they name.

    spaCy validates ``initialize`` settings with a pydantic model built from the method's
    signature, and string annotations (``from __future__ import annotations``) cannot be
    resolved from spaCy's module.
    """
    function.__annotations__.update(get_type_hints(function))
