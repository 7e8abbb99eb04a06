"""Checks that a rationale and its answer agree with the knowledge graph of the report.

The reward compares the graph of a completion's rationale with the graph of the reference
rationale, so a reference rationale must not bring in entities that the report does not
state. Every item, whether written from templates or by a language model, passes
``check_item`` before it is written.
"""

from __future__ import annotations

from kg_schema import KnowledgeGraph
from policy_trainer.synthesis.questions import Candidate

YES_NO = ("yes", "no")


def check_item(
    candidate: Candidate, rationale_graph: KnowledgeGraph, report_graph: KnowledgeGraph
) -> str | None:
    """Return why the item is not grounded in the report graph, or None when it is.

    Rules: (1) every (canonical, label) entity of the rationale occurs in the report graph;
    (2) the rationale mentions the asked finding with the label that gave the answer;
    (3) region items keep the ``located_at`` triplets their answer rests on.
    """
    extra = rationale_graph.entity_keys() - report_graph.entity_keys()
    if extra:
        names = ", ".join(f"{name} ({label})" for name, label in sorted(extra))
        return f"rationale entities not in the report graph: {names}"

    if (candidate.finding, candidate.finding_label) not in rationale_graph.entity_keys():
        return (
            f"rationale does not state {candidate.finding} as {candidate.finding_label}"
        )

    missing = set(candidate.expected_triplets) - rationale_graph.relation_keys()
    if missing:
        triplets = "; ".join(" ".join(triplet) for triplet in sorted(missing))
        return f"rationale lacks the relation(s) {triplets}"
    return None


def normalize_answer(answer: str) -> str:
    """Return ``answer`` lower-cased, with surrounding spaces and final punctuation removed."""
    return " ".join(answer.strip().strip(".!?").lower().split())
