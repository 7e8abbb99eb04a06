"""Tests of kg_reward.gold: the gold-set loader, the scoring and the pipeline's floors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kg_reward.gold import (
    DEFAULT_GOLD_PATH,
    Counts,
    GoldScores,
    evaluate_extractor,
    load_gold,
    score_graph,
)
from kg_schema import ENTITY_LABELS, RELATION_TYPES, Entity, KnowledgeGraph, Relation

# Floors a few points below the scores measured when they were set (entity F1 0.895,
# span-overlap F1 0.955, relation F1 0.766). They catch regressions of the pipeline and
# do not measure its absolute quality.
ENTITY_F1_FLOOR = 0.85
ENTITY_SPAN_F1_FLOOR = 0.92
RELATION_F1_FLOOR = 0.70


def test_gold_file_covers_every_label_and_relation_type() -> None:
    documents = load_gold()
    labels = {entity.label for doc in documents for entity in doc.entities}
    relation_types = {relation[1] for doc in documents for relation in doc.relations}

    assert len(documents) >= 60
    assert labels == set(ENTITY_LABELS)
    assert relation_types == set(RELATION_TYPES)


def test_gold_file_assertions_match_labels() -> None:
    for document in load_gold():
        for entity in document.entities:
            negated = entity.label.endswith("_notpresent")
            assert (entity.assertion == "absent") == negated, (document.id, entity)


def test_load_gold_rejects_wrong_span(tmp_path: Path) -> None:
    record = {
        "id": "x",
        "text": "No pneumothorax.",
        "entities": [
            {"text": "pneumothorax", "start": 0, "end": 12, "label": "disorder_notpresent",
             "canonical": "pneumothorax", "assertion": "absent"},
        ],
        "relations": [],
    }  # fmt: skip
    path = tmp_path / "gold.jsonl"
    path.write_text(json.dumps(record) + "\n")

    with pytest.raises(ValueError, match="is not 'pneumothorax'"):
        load_gold(path)


def test_score_graph_counts_canonical_matches() -> None:
    document = next(doc for doc in load_gold() if doc.text == "Small left pleural effusion.")
    predicted = KnowledgeGraph(
        entities=[
            Entity(text="left", start=6, end=10, label="anatomy", canonical="left"),
            Entity(text="pleural effusion", start=11, end=27, label="disorder_present",
                   canonical="pleural effusion"),
            Entity(text="effusion", start=19, end=27, label="disorder_present",
                   canonical="effusion"),
        ],
        relations=[Relation(head=1, tail=0, type="located_at")],
    )  # fmt: skip

    entities, spans, relations = score_graph(predicted, document)

    assert (entities.tp, entities.fp, entities.fn) == (2, 1, 1)
    assert (spans.tp, spans.fp, spans.fn) == (2, 1, 1)
    assert (relations.tp, relations.fp, relations.fn) == (1, 0, 1)


def test_counts_scores_of_empty_sets_are_zero() -> None:
    assert Counts().f1 == 0.0
    assert Counts(tp=1, fp=1, fn=0).precision == 0.5


def test_gold_default_path_exists() -> None:
    assert DEFAULT_GOLD_PATH.is_file()


@pytest.fixture(scope="module")
def gold_scores(extractor) -> GoldScores:
    return evaluate_extractor(extractor, load_gold())


def test_extractor_entity_f1_above_floor(gold_scores: GoldScores) -> None:
    assert gold_scores.entities.f1 >= ENTITY_F1_FLOOR


def test_extractor_entity_span_f1_above_floor(gold_scores: GoldScores) -> None:
    assert gold_scores.entity_spans.f1 >= ENTITY_SPAN_F1_FLOOR


def test_extractor_relation_f1_above_floor(gold_scores: GoldScores) -> None:
    assert gold_scores.relations.f1 >= RELATION_F1_FLOOR


def test_gold_breakdown_sums_to_totals(gold_scores: GoldScores) -> None:
    for split, total in (
        (gold_scores.entities_by_label, gold_scores.entities),
        (gold_scores.relations_by_type, gold_scores.relations),
    ):
        assert sum(counts.tp for counts in split.values()) == total.tp
        assert sum(counts.fp for counts in split.values()) == total.fp
        assert sum(counts.fn for counts in split.values()) == total.fn
