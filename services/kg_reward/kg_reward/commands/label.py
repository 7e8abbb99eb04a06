"""``kg-reward label``: label radiology reports with ChestX-ray14 or CheXpert findings.

    kg-reward label --reports reports.csv --schema chestxray14 --output labels.csv \
        [--gold gold_labels.csv]

The reports CSV needs the columns ``uid``, ``findings`` and ``impression`` (other columns
are ignored, empty cells are allowed). With ``--gold`` the command prints per-finding and
micro precision, recall and F1 against a label CSV in the same layout as the output.

Rows whose findings and impression contain no text (empty, whitespace or only ``XXXX``
redactions) get no finding, so ``normal`` is 0 in chestxray14 and ``No Finding`` is blank in
chexpert. One WARNING gives their count and first uids. A uid that occurs on several rows is
kept on each (every input row gets an output row) and one WARNING names the repeated uids,
because a label CSV keyed by uid, such as a gold file, cannot tell those rows apart.
"""

from __future__ import annotations

import argparse
import csv
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

from kg_reward.errors import CommandError

logger = logging.getLogger(__name__)

REPORT_COLUMNS = ("uid", "findings", "impression")
# Uids named in one warning; the count covers all of them.
MAX_UIDS_NAMED = 5


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "label",
        help="Label reports with ChestX-ray14 or CheXpert findings from their graphs.",
        description="Label radiology reports with ChestX-ray14 (0/1) or CheXpert (1/0/-1/blank) "
        "findings derived from their knowledge graphs.",
    )
    parser.add_argument(
        "--reports", required=True, type=Path, help="CSV with uid, findings, impression."
    )
    parser.add_argument(
        "--schema",
        required=True,
        help="Label schema: chestxray14 (0/1) or chexpert (1/0/-1/blank).",
    )
    parser.add_argument("--output", required=True, type=Path, help="Label CSV to write.")
    parser.add_argument(
        "--gold", type=Path, default=None, help="Gold label CSV to score the output against."
    )
    parser.add_argument(
        "--pipeline", type=Path, default=None, help="Saved pipeline directory (default: packaged)."
    )
    parser.add_argument(
        "--batch-size", type=int, default=64, help="Reports per spaCy batch (default 64)."
    )
    parser.set_defaults(func=run)


def read_reports(path: Path) -> list[dict[str, str]]:
    """Read the report rows, raising CommandError on a missing file or missing columns."""
    if path.is_dir():
        raise CommandError(f"--reports {path} is a directory; pass a CSV file")
    if not path.is_file():
        raise CommandError(f"reports file not found: {path}")
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            missing = [name for name in REPORT_COLUMNS if name not in (reader.fieldnames or ())]
            if missing:
                raise CommandError(
                    f"{path}: missing column(s) {', '.join(missing)}; "
                    f"the reports CSV needs {', '.join(REPORT_COLUMNS)}"
                )
            return [{name: row[name] or "" for name in REPORT_COLUMNS} for row in reader]
    except (UnicodeDecodeError, csv.Error) as error:
        raise CommandError(f"{path}: not a readable UTF-8 CSV file ({error})") from error


def run(args: argparse.Namespace) -> int:
    from kg_reward.labeler import SCHEMAS

    if args.schema not in SCHEMAS:
        raise CommandError(f"unknown --schema {args.schema!r}; use one of {', '.join(SCHEMAS)}")
    if args.batch_size < 1:
        raise CommandError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.pipeline is not None and not args.pipeline.is_dir():
        raise CommandError(f"--pipeline directory not found: {args.pipeline}")
    if args.output.is_dir():
        raise CommandError(f"--output {args.output} is a directory; pass a file path")
    if not args.output.parent.is_dir():
        raise CommandError(f"--output folder not found: {args.output.parent}")
    reports = read_reports(args.reports)
    gold = read_gold(args.gold, args.schema) if args.gold is not None else None

    import kg_reward
    from kg_reward.errors import InputError
    from kg_reward.labeler import Labeler, label_ids, report_text, write_labels

    try:
        extractor = kg_reward.load(args.pipeline)
    except (InputError, OSError) as error:
        raise CommandError(f"cannot load pipeline {args.pipeline}: {error}") from error
    labeler = Labeler(extractor)
    texts = [report_text(row["findings"], row["impression"]) for row in reports]
    warn_input_problems([row["uid"] for row in reports], texts)
    rows = labeler.label_texts(texts, args.schema, batch_size=args.batch_size)
    ids = label_ids([row["uid"] for row in reports], args.schema)
    try:
        write_labels(args.output, ids, rows, args.schema)
    except OSError as error:
        raise CommandError(f"failed to write --output {args.output}: {error}") from error

    if gold is not None:
        print_scores(ids, rows, gold, args.schema)
    return 0


def warn_input_problems(uids: Sequence[str], texts: Sequence[str]) -> None:
    """Log one WARNING for rows without report text and one for repeated uids."""
    from kg_reward.labeler import has_report_text

    empty = [uid for uid, text in zip(uids, texts, strict=True) if not has_report_text(text)]
    if empty:
        logger.warning(
            "%d of %d reports have no text in findings or impression (empty, whitespace or "
            "only XXXX redactions) and get no finding, not normal: uid %s",
            len(empty),
            len(uids),
            _name_some(empty),
        )
    repeated = [uid for uid, count in Counter(uids).items() if count > 1]
    if repeated:
        logger.warning(
            "%d uid(s) occur on more than one row; each row is labelled, but a label file "
            "keyed by uid (such as --gold) matches all of them to one row: %s",
            len(repeated),
            _name_some(repeated),
        )


def _name_some(uids: Sequence[str]) -> str:
    named = ", ".join(repr(uid) for uid in uids[:MAX_UIDS_NAMED])
    return f"{named} and {len(uids) - MAX_UIDS_NAMED} more" if len(uids) > MAX_UIDS_NAMED else named


def read_gold(path: Path, schema: str) -> dict[str, dict[str, str]]:
    """Read the --gold label CSV, raising CommandError when it is missing or malformed."""
    from kg_reward.labeler import read_labels

    if path.is_dir():
        raise CommandError(f"--gold {path} is a directory; pass a CSV file")
    if not path.is_file():
        raise CommandError(f"gold file not found: {path}")
    try:
        return read_labels(path, schema)
    except (ValueError, csv.Error) as error:
        # UnicodeDecodeError is a ValueError, so a binary file lands here too.
        raise CommandError(f"{path}: unreadable gold label CSV ({error})") from error


def print_scores(
    ids: list[str],
    rows: Sequence[Mapping[str, int | None]],
    gold: dict[str, dict[str, str]],
    schema: str,
) -> None:
    """Print per-finding and micro precision, recall and F1 against the gold rows."""
    from kg_reward.gold import format_label_scores, score_label_rows
    from kg_reward.labeler import CHESTXRAY14_FINDINGS, CHEXPERT_OBSERVATIONS

    if schema == "chestxray14":
        findings, extra = CHESTXRAY14_FINDINGS, ("normal",)
    else:
        findings, extra = CHEXPERT_OBSERVATIONS[1:], ("No Finding",)
    scores, matched = score_label_rows(ids, rows, gold, findings, extra)
    if not matched:
        raise CommandError("no report id of --reports appears in --gold; nothing to score")
    print(f"scored {matched} of {len(ids)} reports against {len(gold)} gold rows")
    print(f"micro averages the {len(findings)} findings; {extra[0]} is scored on its own")
    print(format_label_scores(scores))
