"""Strata of a question pool and the stratified and uniform selections over them.

A stratum is (kind, answer class). The answer class is the answer itself for yes/no and
comparison items and ``<region>`` for open region answers (anatomy names), so that the
strata stay few and comparable across reports.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from policy_trainer.errors import DataError

Stratum = tuple[str, str]
REQUIRED_FIELDS = ("id", "kind", "question", "answer", "rationale", "messages")


def read_pool(path: str | Path) -> list[dict[str, Any]]:
    """Read a JSONL pool of synthesized items, checking the fields mining needs."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"cannot read pool {path}: {error}") from error
    records = []
    seen: set[str] = set()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataError(f"{path}:{number} is not valid JSON: {error}") from error
        missing = [name for name in REQUIRED_FIELDS if name not in record]
        if missing:
            raise DataError(
                f"{path}:{number} lacks the field(s) {', '.join(missing)}; "
                "write the pool with `policy-trainer synthesize`"
            )
        if record["id"] in seen:
            raise DataError(f"{path}:{number} repeats the id {record['id']!r}")
        seen.add(record["id"])
        records.append(record)
    if not records:
        raise DataError(f"pool {path} contains no records")
    return records


def stratum_of(record: dict[str, Any]) -> Stratum:
    """Return the (kind, answer class) stratum of a record."""
    kind = str(record["kind"])
    answer = str(record["answer"]).strip().lower()
    if kind == "region" and answer not in ("yes", "no"):
        answer = "<region>"
    return kind, answer


def group_by_stratum(records: Iterable[dict[str, Any]]) -> dict[Stratum, list[dict[str, Any]]]:
    """Group records by stratum, keeping their input order within each stratum."""
    groups: dict[Stratum, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        groups[stratum_of(record)].append(record)
    return dict(sorted(groups.items()))


def stratified_sample(
    records: Sequence[dict[str, Any]], fraction: float, minimum: int, rng: random.Random
) -> list[dict[str, Any]]:
    """Draw ``round(fraction * n)`` records (at least ``minimum``) from every stratum."""
    sample = []
    for members in group_by_stratum(records).values():
        count = min(len(members), max(minimum, round(fraction * len(members))))
        sample.extend(rng.sample(members, count))
    return sample


def allocate_evenly(capacities: dict[Stratum, int], total: int) -> dict[Stratum, int]:
    """Split ``total`` over strata as evenly as their capacities allow (water-filling).

    Every stratum gets the same quota until it runs out; what it cannot take goes to the
    others. Remainders go to strata in sorted order, so the split is deterministic.
    """
    quotas = {stratum: 0 for stratum in capacities}
    remaining = min(total, sum(capacities.values()))
    open_strata = sorted(s for s, capacity in capacities.items() if capacity > 0)
    while remaining > 0 and open_strata:
        share = max(1, remaining // len(open_strata))
        for stratum in list(open_strata):
            take = min(share, capacities[stratum] - quotas[stratum], remaining)
            quotas[stratum] += take
            remaining -= take
            if quotas[stratum] == capacities[stratum]:
                open_strata.remove(stratum)
            if remaining == 0:
                break
    return quotas


def take_evenly(
    ordered: Sequence[dict[str, Any]], total: int
) -> list[dict[str, Any]]:
    """Take ``total`` records spread evenly over strata, each stratum in the given order."""
    groups = group_by_stratum(ordered)
    quotas = allocate_evenly({stratum: len(members) for stratum, members in groups.items()}, total)
    chosen = []
    for stratum, members in groups.items():
        chosen.extend(members[: quotas[stratum]])
    return chosen
