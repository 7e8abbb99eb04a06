"""The synthesis stage: reports -> graphs -> grounded questions -> balanced, split JSONL.

Steps:

1. Read the reports and extract one knowledge graph per report with the kg_reward
   pipeline, in-process.
2. Build question candidates from each graph and quote the report sentences about each
   finding as the rationale.
3. Extract each rationale's graph and drop the items that ``check_item`` rejects.
4. Optionally let a chat model reword the items, checked the same way.
5. Balance yes/no, split by report, and write the files and ``summary.json``.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections import Counter
from pathlib import Path
from typing import Any, Protocol

from kg_schema import KnowledgeGraph
from policy_trainer.synthesis.config import SynthesizeConfig
from policy_trainer.synthesis.dataset import (
    SPLITS,
    balance_yes_no,
    count_items,
    make_record,
    split_reports,
    write_jsonl,
)
from policy_trainer.synthesis.grounding import check_item
from policy_trainer.synthesis.questions import Candidate, QuestionBuilder
from policy_trainer.synthesis.reports import Report, read_reports
from policy_trainer.synthesis.sentences import Sentence, split_sentences

logger = logging.getLogger(__name__)


class GraphExtractor(Protocol):
    """The part of ``kg_reward.extraction.Extractor`` that synthesis uses."""

    def extract(
        self, texts: list[str], ids: list[str] | None = None, batch_size: int = 64
    ) -> list[KnowledgeGraph]: ...


def synthesize(
    config: SynthesizeConfig, extractor: GraphExtractor | None = None
) -> dict[str, Any]:
    """Run the stage and return the summary that is also written to ``summary.json``."""
    started = time.perf_counter()
    timings: dict[str, float] = {}

    # 1. Reports and their graphs.
    reports = read_reports(config.source, config.input_path)
    if config.max_reports is not None:
        reports = reports[: config.max_reports]
    if extractor is None:
        extractor = load_extractor(config.pipeline_path)
    step = time.perf_counter()
    graphs = extractor.extract(
        [report.text for report in reports], ids=[r.report_id for r in reports],
        batch_size=config.batch_size,
    )
    timings["report_extraction_s"] = time.perf_counter() - step
    logger.info("extracted %d report graphs in %.1f s", len(graphs),
                timings["report_extraction_s"])

    # 2. Candidates with rationales quoted from the report.
    # One generator per purpose, so that the split of reports does not depend on how many
    # template choices came before it.
    builder = QuestionBuilder(config.kinds, random.Random(f"{config.seed}:templates"))
    drafts: list[tuple[Candidate, str, Report, KnowledgeGraph]] = []
    for report, graph in zip(reports, graphs, strict=True):
        sentences = split_sentences(report.text)
        for candidate in builder.build(report, graph, sentences):
            rationale = quote_rationale(candidate, sentences, config.max_rationale_sentences)
            drafts.append((candidate, rationale, report, graph))

    # 3. Grounding check of every rationale.
    step = time.perf_counter()
    rationale_texts = sorted({rationale for _, rationale, _, _ in drafts})
    rationale_graphs = dict(zip(
        rationale_texts,
        extractor.extract(rationale_texts, batch_size=config.batch_size),
        strict=True,
    ))
    timings["rationale_extraction_s"] = time.perf_counter() - step
    rejected: Counter[str] = Counter()
    records = []
    grounded = []
    for candidate, rationale, report, graph in drafts:
        reason = check_item(candidate, rationale_graphs[rationale], graph)
        if reason is not None:
            rejected[reason.split(":")[0]] += 1
            logger.debug("dropped %s %r: %s", candidate.report_id, candidate.question, reason)
            continue
        grounded.append((candidate, rationale, report, graph))

    # 4. Optional rewording by a chat model, checked against the same graphs.
    llm_summary: dict[str, Any] | None = None
    if config.llm_base_url:
        from policy_trainer.synthesis.llm import reword_items

        grounded, llm_summary = reword_items(config, grounded, extractor)

    seen_ids: set[str] = set()
    for candidate, rationale, report, _ in grounded:
        record = make_record(
            report_id=report.report_id, kind=candidate.kind, question=candidate.question,
            answer=candidate.answer, rationale=rationale, image=image_of(report, config),
            system_prompt=config.system_prompt,
            source=candidate.source, finding=candidate.finding, region=candidate.region,
        )
        # Reworded questions can coincide within a report; keep the first of each.
        if record["id"] in seen_ids:
            rejected["duplicate question"] += 1
            continue
        seen_ids.add(record["id"])
        records.append(record)

    # 5. Balance, split by report, write.
    before_balance = count_items(records)
    if config.balance_answers:
        records = balance_yes_no(records, random.Random(f"{config.seed}:balance"))
    assignment = split_reports(
        [r.report_id for r in reports], config.split_ratios, random.Random(f"{config.seed}:split")
    )
    output_dir = Path(config.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    per_split = {}
    for split in SPLITS:
        chosen = [record for record in records if assignment[record["report_id"]] == split]
        write_jsonl(output_dir / f"{split}.jsonl", chosen)
        per_split[split] = count_items(chosen)

    timings["total_s"] = time.perf_counter() - started
    summary = {
        "source": config.source,
        "reports_read": len(reports),
        "reports_with_items": len({record["report_id"] for record in records}),
        "candidates": len(drafts),
        "skipped_uncertain_mentions": builder.skipped_uncertain,
        "skipped_conflicting_questions": builder.skipped_conflicting,
        "skipped_present_after_negation_cue": builder.skipped_negation_cue,
        "rejected_by_grounding": dict(sorted(rejected.items())),
        "before_balance": before_balance,
        "total": count_items(records),
        "splits": per_split,
        "llm": llm_summary,
        "timings": {name: round(value, 2) for name, value in timings.items()},
    }
    (output_dir / "summary.json").write_text(
        json.dumps(summary, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    return summary


def load_extractor(pipeline_path: Path | None) -> GraphExtractor:
    """Load the kg_reward extraction pipeline (spaCy), the default one when no path is set."""
    import kg_reward

    extractor: GraphExtractor = kg_reward.load(pipeline_path)
    return extractor


def quote_rationale(candidate: Candidate, sentences: list[Sentence], limit: int) -> str:
    """Join the first ``limit`` report sentences about the candidate's finding."""
    return " ".join(sentences[index].text for index in candidate.sentences[:limit])


def image_of(report: Report, config: SynthesizeConfig) -> str | None:
    """Return the image of the first view of the report, as a path or an image id."""
    if not report.images:
        return None
    # NOTE: Open-i XML does not name the view, so the first image may be a lateral one.
    image = report.images[0]
    if config.image_dir:
        return str(Path(config.image_dir) / f"{image}{config.image_suffix}")
    return image
