"""Records, answer balancing, report-level splits and JSONL output of synthesized items."""

from __future__ import annotations

import hashlib
import json
import logging
import random
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

SPLITS: tuple[str, ...] = ("train", "dev", "test")
YES_NO = ("yes", "no")


def item_id(report_id: str, kind: str, question: str) -> str:
    """Return a stable id of one question about one report."""
    digest = hashlib.sha1(f"{report_id}\n{question}".encode()).hexdigest()[:10]
    return f"{report_id}-{kind}-{digest}"


def make_record(
    *, report_id: str, kind: str, question: str, answer: str, rationale: str,
    image: str | None, system_prompt: str | None, source: str, finding: str,
    region: str | None = None,
) -> dict[str, Any]:
    """Build one output record: the training chat, the reward references and provenance.

    ``finding`` (and ``region`` for region yes/no items) name the canonical graph entities
    the question asks about; ``source`` is ``template`` or ``llm``.
    """
    messages = []
    if system_prompt:
        messages.append({"role": "system", "content": system_prompt})
    messages.append({"role": "user", "content": question})
    messages.append({
        "role": "assistant",
        "content": f"<think>{rationale}</think><answer>{answer}</answer>",
    })
    record: dict[str, Any] = {
        "id": item_id(report_id, kind, question),
        "report_id": report_id,
        "kind": kind,
        "question": question,
        "answer": answer,
        "rationale": rationale,
        "messages": messages,
        "reference": rationale,
        "reference_answer": answer,
        "source": source,
        "finding": finding,
    }
    if region:
        record["region"] = region
    if image:
        record["image"] = image
    return record


def balance_yes_no(records: list[dict[str, Any]], rng: random.Random) -> list[dict[str, Any]]:
    """Drop random yes/no records within each kind until yes and no are equally frequent.

    Records with other answers (regions, comparison directions) are kept unchanged, and
    the kept records stay in their input order.
    """
    dropped: set[str] = set()
    for kind in sorted({record["kind"] for record in records}):
        groups = {
            answer: [r["id"] for r in records if r["kind"] == kind and r["answer"] == answer]
            for answer in YES_NO
        }
        target = min(len(ids) for ids in groups.values())
        if target == 0 and any(groups.values()):
            logger.warning(
                "%s questions have only one yes/no answer class (yes: %d, no: %d), so "
                "balancing drops all of them; set balance_answers: false to keep them",
                kind, len(groups["yes"]), len(groups["no"]),
            )
        for ids in groups.values():
            if len(ids) > target:
                dropped.update(rng.sample(ids, len(ids) - target))
    return [record for record in records if record["id"] not in dropped]


def split_reports(
    report_ids: Sequence[str], ratios: Sequence[float], rng: random.Random
) -> dict[str, str]:
    """Assign every report to train, dev or test, so no report's items span two splits."""
    ordered = sorted(set(report_ids))
    rng.shuffle(ordered)
    train_end = round(len(ordered) * ratios[0])
    dev_end = train_end + round(len(ordered) * ratios[1])
    assignment = {}
    for position, report_id in enumerate(ordered):
        if position < train_end:
            assignment[report_id] = "train"
        elif position < dev_end:
            assignment[report_id] = "dev"
        else:
            assignment[report_id] = "test"
    return assignment


def write_jsonl(path: Path, records: Iterable[dict[str, Any]]) -> int:
    """Write records as JSON lines and return how many were written."""
    count = 0
    with path.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n")
            count += 1
    return count


def count_items(records: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Count records per kind, per answer class and the yes share of yes/no items."""
    records = list(records)
    per_kind = Counter(record["kind"] for record in records)
    answers: dict[str, Counter[str]] = {}
    for record in records:
        answer = record["answer"] if record["kind"] != "region" or record["answer"] in YES_NO \
            else "<region>"
        answers.setdefault(record["kind"], Counter())[answer] += 1
    yes = sum(1 for record in records if record["answer"] == "yes")
    no = sum(1 for record in records if record["answer"] == "no")
    return {
        "items": len(records),
        "reports": len({record["report_id"] for record in records}),
        "per_kind": dict(sorted(per_kind.items())),
        "per_kind_answer": {kind: dict(sorted(c.items())) for kind, c in sorted(answers.items())},
        "yes": yes,
        "no": no,
        "yes_share": round(yes / (yes + no), 4) if yes + no else None,
    }
