"""Evaluation against gold annotations: extraction gold set and report labels.

The extraction gold set (``tests/kg_reward/gold/extraction_gold.jsonl``, layout in the
README beside it) contains hand-annotated texts. Scores are micro-averaged over all texts:

- entities by (canonical, label), each text's items counted as a set;
- entities by label and span overlap, where one gold span is matched at most once;
- relations by (head canonical, type, tail canonical), as a set per text.

Run it on a checkout: ``python -m kg_reward.gold [--gold FILE]``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kg_schema import KnowledgeGraph

# The gold set ships with the tests, beside the package sources in a checkout.
DEFAULT_GOLD_PATH = (
    Path(__file__).resolve().parents[3] / "tests" / "kg_reward" / "gold" / "extraction_gold.jsonl"
)


@dataclass
class Counts:
    """True positive, false positive and false negative counts with derived scores."""

    tp: int = 0
    fp: int = 0
    fn: int = 0

    def add(self, other: Counts) -> None:
        self.tp += other.tp
        self.fp += other.fp
        self.fn += other.fn

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        total = 2 * self.tp + self.fp + self.fn
        return 2 * self.tp / total if total else 0.0


def compare_sets(predicted: Iterable[Any], gold: Iterable[Any]) -> Counts:
    """Count matches between two sets of hashable items."""
    predicted_set, gold_set = set(predicted), set(gold)
    matched = len(predicted_set & gold_set)
    return Counts(matched, len(predicted_set) - matched, len(gold_set) - matched)


# --- extraction gold set -------------------------------------------------------------


@dataclass(frozen=True)
class GoldEntity:
    text: str
    start: int
    end: int
    label: str
    canonical: str
    assertion: str


@dataclass(frozen=True)
class GoldDocument:
    """One annotated text: entities with spans, relations as canonical triplets."""

    id: str
    text: str
    entities: tuple[GoldEntity, ...]
    relations: frozenset[tuple[str, str, str]]


def load_gold(path: str | Path = DEFAULT_GOLD_PATH) -> list[GoldDocument]:
    """Load the gold JSONL and check every span and relation end.

    Relation ends name the ``text`` of entities of the same record.
    """
    documents = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            documents.append(_parse_document(json.loads(line), f"{path}:{number}"))
    return documents


def _parse_document(record: Mapping[str, Any], where: str) -> GoldDocument:
    text = record["text"]
    entities = []
    for item in record["entities"]:
        entity = GoldEntity(
            item["text"],
            item["start"],
            item["end"],
            item["label"],
            item["canonical"],
            item.get("assertion", "present"),
        )
        if text[entity.start : entity.end] != entity.text:
            raise ValueError(f"{where}: span {entity.start}:{entity.end} is not {entity.text!r}")
        entities.append(entity)

    canonical_of = {entity.text: entity.canonical for entity in entities}
    relations = set()
    for head, kind, tail in record["relations"]:
        if head not in canonical_of or tail not in canonical_of:
            raise ValueError(f"{where}: relation {head!r} -> {tail!r} names an unknown entity")
        relations.add((canonical_of[head], kind, canonical_of[tail]))
    return GoldDocument(record["id"], text, tuple(entities), frozenset(relations))


@dataclass
class GoldScores:
    """Micro-averaged counts over the gold set."""

    entities: Counts
    entity_spans: Counts
    relations: Counts
    documents: int
    entities_by_label: dict[str, Counts] = field(default_factory=dict)
    """Counts of the (canonical, label) match, split by the entity label."""
    relations_by_type: dict[str, Counts] = field(default_factory=dict)
    """Counts of the triplet match, split by the relation type."""


def score_graph(graph: KnowledgeGraph, gold: GoldDocument) -> tuple[Counts, Counts, Counts]:
    """Return entity, span-overlap and relation counts of one predicted graph."""
    entities = compare_sets(
        graph.entity_keys("canonical"), {(e.canonical, e.label) for e in gold.entities}
    )
    relations = compare_sets(graph.relation_keys("canonical"), gold.relations)
    return entities, _span_overlap(graph, gold), relations


def _span_overlap(graph: KnowledgeGraph, gold: GoldDocument) -> Counts:
    unmatched = list(gold.entities)
    counts = Counts()
    for entity in graph.entities:
        match = next(
            (
                g
                for g in unmatched
                if g.label == entity.label and g.start < entity.end and entity.start < g.end
            ),
            None,
        )
        if match is None:
            counts.fp += 1
        else:
            counts.tp += 1
            unmatched.remove(match)
    counts.fn = len(unmatched)
    return counts


def evaluate_extractor(extractor: Any, documents: Sequence[GoldDocument]) -> GoldScores:
    """Run the extractor on the gold texts and micro-average the counts."""
    graphs = extractor.extract([doc.text for doc in documents], ids=[doc.id for doc in documents])
    scores = GoldScores(Counts(), Counts(), Counts(), len(documents))
    for graph, document in zip(graphs, documents, strict=True):
        entities, spans, relations = score_graph(graph, document)
        scores.entities.add(entities)
        scores.entity_spans.add(spans)
        scores.relations.add(relations)
        _add_split(scores.entities_by_label, graph.entity_keys(), _gold_entity_keys(document))
        _add_split(scores.relations_by_type, graph.relation_keys(), document.relations)
    return scores


def _gold_entity_keys(document: GoldDocument) -> set[tuple[str, str]]:
    return {(entity.canonical, entity.label) for entity in document.entities}


def _add_split(
    split: dict[str, Counts], predicted: Iterable[tuple[str, ...]], gold: Iterable[tuple[str, ...]]
) -> None:
    # Index 1 is the label of an entity key (canonical, label) and the type of a relation
    # key (head, type, tail).
    predicted_set, gold_set = set(predicted), set(gold)
    for key in predicted_set | gold_set:
        name = key[1]
        counts = split.setdefault(name, Counts())
        counts.tp += key in predicted_set and key in gold_set
        counts.fp += key in predicted_set and key not in gold_set
        counts.fn += key in gold_set and key not in predicted_set


def format_gold_scores(scores: GoldScores) -> str:
    """Format the gold-set scores as an aligned table."""
    rows = [
        ("entities (canonical, label)", scores.entities),
        ("entities (label, span overlap)", scores.entity_spans),
        ("relations (head, type, tail)", scores.relations),
    ]
    return format_table(rows)


def format_gold_breakdown(scores: GoldScores) -> str:
    """Format the canonical entity match per label and the relation match per type."""
    rows = [(f"entity {name}", counts) for name, counts in sorted(scores.entities_by_label.items())]
    rows += [
        (f"relation {name}", counts) for name, counts in sorted(scores.relations_by_type.items())
    ]
    return format_table(rows)


# --- report labels -------------------------------------------------------------------


def score_labels(
    predicted: Sequence[Mapping[str, str]],
    gold: Sequence[Mapping[str, str]],
    findings: Sequence[str],
    extra: Sequence[str] = (),
) -> dict[str, Counts]:
    """Count per column, treating the value '1' as positive.

    'micro' sums the ``findings`` columns; ``extra`` columns (such as ``normal``) are
    counted on their own and left out of the micro average.
    """
    scores = {name: Counts() for name in (*findings, *extra)}
    for predicted_row, gold_row in zip(predicted, gold, strict=True):
        for name, counts in scores.items():
            predicted_positive = predicted_row[name] == "1"
            gold_positive = gold_row[name].strip() == "1"
            counts.tp += predicted_positive and gold_positive
            counts.fp += predicted_positive and not gold_positive
            counts.fn += gold_positive and not predicted_positive
    micro = Counts()
    for name in findings:
        micro.add(scores[name])
    ordered = {name: scores[name] for name in findings}
    ordered["micro"] = micro
    ordered.update({name: scores[name] for name in extra})
    return ordered


def score_label_rows(
    ids: Sequence[str],
    rows: Sequence[Mapping[str, int | None]],
    gold: Mapping[str, Mapping[str, str]],
    findings: Sequence[str],
    extra: Sequence[str] = (),
) -> tuple[dict[str, Counts], int]:
    """Score labeler rows against gold rows keyed by id.

    Return the counts and the number of rows scored. Rows whose id is missing from the gold
    are skipped.
    """
    columns = (*findings, *extra)
    predicted, expected = [], []
    for row_id, row in zip(ids, rows, strict=True):
        if row_id in gold:
            predicted.append({name: str(row[name]) for name in columns})
            expected.append({name: gold[row_id][name] for name in columns})
    return score_labels(predicted, expected, findings, extra), len(predicted)


def format_label_scores(scores: Mapping[str, Counts]) -> str:
    """Format per-finding label scores as an aligned table."""
    return format_table(list(scores.items()))


def format_table(rows: Sequence[tuple[str, Counts]]) -> str:
    """Format named counts as a plain table: precision, recall, F1, tp, fp, fn."""
    width = max(len("name"), *(len(name) for name, _ in rows))
    lines = [f"{'name':<{width}}  precision  recall     f1    tp    fp    fn"]
    for name, counts in rows:
        lines.append(
            f"{name:<{width}}  {counts.precision:9.3f}  {counts.recall:6.3f}  {counts.f1:5.3f}"
            f"  {counts.tp:4d}  {counts.fp:4d}  {counts.fn:4d}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Score the extraction pipeline on the gold set.")
    parser.add_argument("--gold", type=Path, default=DEFAULT_GOLD_PATH, help="Gold JSONL file.")
    args = parser.parse_args(argv)

    import kg_reward

    scores = evaluate_extractor(kg_reward.load(), load_gold(args.gold))
    print(f"gold set: {scores.documents} texts")
    print(format_gold_scores(scores))
    print()
    print(format_gold_breakdown(scores))
    return 0


if __name__ == "__main__":
    sys.exit(main())
