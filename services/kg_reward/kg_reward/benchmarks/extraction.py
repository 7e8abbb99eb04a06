"""Extraction benchmark: quality on the gold set and report labels, speed, peak memory.

    python -m kg_reward.benchmarks.extraction [--reports CSV --labels CSV] [--gold JSONL]

Steps:
1. gold set: entity and relation precision, recall and F1 (``kg_reward.gold``);
2. labeler: micro-F1 of the ChestX-ray14 labels against the Open-i gold standard, on the
   Indiana development reports found beside the checkout (``<repo>/../shared/data/iu_xray``)
   or else on the sample shipped with the tests;
3. speed: words (whitespace-separated) per second of the whole extraction over the distinct
   texts of the same reports, beside spaCy's bare English tokenizer on those texts, and
   their ratio in wall time and in CPU time of this process. Each side takes the fastest of
   three runs, and every extraction run starts with cold caches;
4. memory: peak resident set size of a fresh process that only loads the pipeline and
   extracts the first reports.

``--reports``/``--labels`` or the environment variables ``KG_REWARD_BENCH_REPORTS`` and
``KG_REWARD_BENCH_LABELS`` choose other report and label files.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from kg_reward.gold import Counts, score_label_rows

REPO = Path(__file__).resolve().parents[4]
DEV_DIR = REPO.parent / "shared" / "data" / "iu_xray"
SAMPLE_DIR = REPO / "tests" / "kg_reward" / "data"
MEMORY_REPORTS = 256

# The child process of step 4. It reads report texts on stdin, one JSON list, and prints its
# peak RSS in KiB. On Linux, ru_maxrss of a child started by fork and exec includes the
# parent's peak, because exec keeps the larger of the two. So the probe reads VmHWM, the peak
# of its own address space, and falls back to ru_maxrss where /proc is missing.
MEMORY_PROBE = """
import json, resource, sys
import kg_reward
texts = json.load(sys.stdin)
kg_reward.load().extract(texts)
try:
    with open("/proc/self/status") as status:
        peak = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
except (OSError, StopIteration):
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(peak)
"""


def default_inputs() -> tuple[Path, Path]:
    """Return the report and label CSVs: environment, then the dev split, then the sample."""
    reports = os.environ.get("KG_REWARD_BENCH_REPORTS")
    labels = os.environ.get("KG_REWARD_BENCH_LABELS")
    if reports and labels:
        return Path(reports), Path(labels)
    if (DEV_DIR / "reports_dev.csv").is_file() and (DEV_DIR / "labels_dev.csv").is_file():
        return DEV_DIR / "reports_dev.csv", DEV_DIR / "labels_dev.csv"
    return SAMPLE_DIR / "iu_reports_sample.csv", SAMPLE_DIR / "iu_labels_sample.csv"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    from kg_reward.gold import DEFAULT_GOLD_PATH

    reports, labels = default_inputs()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--reports", type=Path, default=reports, help="Reports CSV (uid, findings, impression)."
    )
    parser.add_argument("--labels", type=Path, default=labels, help="ChestX-ray14 gold label CSV.")
    parser.add_argument(
        "--gold", type=Path, default=DEFAULT_GOLD_PATH, help="Extraction gold JSONL."
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv if argv is not None else [])

    import spacy

    import kg_reward
    from kg_reward.commands.label import read_reports
    from kg_reward.gold import (
        evaluate_extractor,
        format_gold_breakdown,
        format_gold_scores,
        load_gold,
    )
    from kg_reward.labeler import report_text

    missing = [str(path) for path in (args.reports, args.labels) if not path.is_file()]
    if missing:
        print(f"extraction benchmark: input not found: {', '.join(missing)}", file=sys.stderr)
        return 1

    started = time.perf_counter()
    extractor = kg_reward.load()
    load_seconds = time.perf_counter() - started

    # Step 1: gold set. It ships with the tests, so an installed package may lack it.
    gold_scores = None
    if args.gold.is_file():
        gold_scores = evaluate_extractor(extractor, load_gold(args.gold))

    # Step 2 and 3: one timed extraction over the reports feeds the labeler.
    reports = read_reports(args.reports)
    texts = [report_text(row["findings"], row["impression"]) for row in reports]
    # The extractor computes each distinct text once (its cache), so both sides of the
    # speed ratio run on the distinct texts, and the timed call finds the cache cold.
    distinct = list(dict.fromkeys(texts))
    words = sum(len(text.split()) for text in distinct)
    extract_seconds, extract_cpu = _time_extraction(extractor, distinct)
    graphs = extractor.extract(texts)
    micro = _labeler_micro(extractor, graphs, [row["uid"] for row in reports], args.labels)
    tokenizer_seconds, tokenizer_cpu = _time_tokenizer(spacy.blank("en"), distinct)

    # Step 4: memory of a fresh process.
    peak_mib = _peak_memory_mib(texts[:MEMORY_REPORTS])

    print("== extraction benchmark ==")
    if gold_scores is None:
        print(f"gold set: not found at {args.gold}, skipped")
    else:
        print(f"gold set: {gold_scores.documents} texts ({args.gold})")
        print(format_gold_scores(gold_scores))
        print()
        print(format_gold_breakdown(gold_scores))
    print()
    rows = [
        ("reports", f"{len(texts)}, {len(distinct)} distinct ({args.reports})"),
        ("words of the distinct reports", f"{words}"),
        (
            "labeler micro-F1, chestxray14",
            f"{micro.f1:.3f} (P {micro.precision:.3f}, R {micro.recall:.3f})",
        ),
        ("pipeline load", f"{load_seconds:.2f} s"),
        ("extraction", f"{words / extract_seconds:,.0f} words/s ({extract_seconds:.2f} s)"),
        ("bare tokenizer", f"{words / tokenizer_seconds:,.0f} words/s ({tokenizer_seconds:.2f} s)"),
        ("speed ratio extraction/tokenizer", f"{tokenizer_seconds / extract_seconds:.3f}"),
        (
            "speed ratio, CPU time",
            f"{tokenizer_cpu / extract_cpu:.3f} "
            f"(extraction {extract_cpu:.2f} s, tokenizer {tokenizer_cpu:.2f} s)",
        ),
        (
            f"peak RSS, load + extract {min(len(texts), MEMORY_REPORTS)} reports",
            f"{peak_mib:.0f} MiB",
        ),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    return 0


def _labeler_micro(extractor: Any, graphs: list[Any], uids: list[str], labels: Path) -> Counts:
    from kg_reward.labeler import CHESTXRAY14_FINDINGS, Labeler, label_ids, read_labels

    rows = Labeler(extractor).label_graphs(graphs, "chestxray14")
    ids = label_ids(uids, "chestxray14")
    scores, _ = score_label_rows(
        ids, rows, read_labels(labels, "chestxray14"), CHESTXRAY14_FINDINGS
    )
    return scores["micro"]


def _time_extraction(extractor: Any, texts: list[str], repeats: int = 3) -> tuple[float, float]:
    """Return the fastest wall and CPU seconds of extracting ``texts`` with cold caches."""
    from kg_reward.extraction import Extractor

    # A new Extractor per run starts with empty text and sentence caches.
    runs = [
        Extractor(extractor.nlp, skip_sections=extractor.skip_sections).extract
        for _ in range(repeats)
    ]
    return _fastest(runs, texts)


def _time_tokenizer(nlp: Any, texts: list[str], repeats: int = 3) -> tuple[float, float]:
    """Return the fastest wall and CPU seconds of tokenizing ``texts``."""

    def tokenize(batch: list[str]) -> None:
        for _doc in nlp.tokenizer.pipe(batch, batch_size=256):
            pass

    return _fastest([tokenize] * repeats, texts)


def _fastest(
    runs: Sequence[Callable[[list[str]], object]], texts: list[str]
) -> tuple[float, float]:
    # The fastest of a few runs, so that a busy shared machine inflates the ratio less; CPU time
    # of this process (time.process_time) is less sensitive to other processes than wall time.
    best_wall = best_cpu = float("inf")
    for run in runs:
        wall, cpu = time.perf_counter(), time.process_time()
        run(texts)
        best_wall = min(best_wall, time.perf_counter() - wall)
        best_cpu = min(best_cpu, time.process_time() - cpu)
    return best_wall, best_cpu


def _peak_memory_mib(texts: list[str]) -> float:
    import json

    result = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE],
        input=json.dumps(texts),
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    # Linux reports ru_maxrss in KiB.
    return int(result.stdout.strip().splitlines()[-1]) / 1024


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
