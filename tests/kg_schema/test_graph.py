from __future__ import annotations

import pytest
from pydantic import ValidationError

from kg_schema import Entity, KnowledgeGraph, Relation


def _entity(text: str, label: str, canonical: str | None = None, start: int = 0) -> Entity:
    return Entity(
        text=text,
        start=start,
        end=start + len(text),
        label=label,  # type: ignore[arg-type]
        canonical=canonical or text.lower(),
    )


@pytest.fixture
def graph() -> KnowledgeGraph:
    return KnowledgeGraph(
        id="r1",
        entities=[
            _entity("Small", "concept", "small"),
            _entity("effusions", "disorder_present", "effusion", start=6),
            _entity("LLL", "anatomy", "left lower lobe", start=19),
        ],
        relations=[
            Relation(head=0, tail=1, type="modify"),
            Relation(head=1, tail=2, type="located_at"),
        ],
    )


def test_entity_keys_canonical(graph: KnowledgeGraph) -> None:
    assert graph.entity_keys() == {
        ("small", "concept"),
        ("effusion", "disorder_present"),
        ("left lower lobe", "anatomy"),
    }


def test_entity_keys_surface(graph: KnowledgeGraph) -> None:
    assert ("effusions", "disorder_present") in graph.entity_keys("surface")
    assert ("LLL", "anatomy") in graph.entity_keys("surface")


def test_relation_keys_follow_direction(graph: KnowledgeGraph) -> None:
    assert graph.relation_keys() == {
        ("small", "modify", "effusion"),
        ("effusion", "located_at", "left lower lobe"),
    }


def test_relation_keys_with_labels_carry_end_labels(graph: KnowledgeGraph) -> None:
    assert graph.relation_keys(labels=True) == {
        ("small", "concept", "modify", "effusion", "disorder_present"),
        ("effusion", "disorder_present", "located_at", "left lower lobe", "anatomy"),
    }


def test_relation_keys_with_labels_separate_negation() -> None:
    def located(label: str) -> KnowledgeGraph:
        return KnowledgeGraph(
            entities=[_entity("effusion", label), _entity("left", "anatomy", start=9)],
            relations=[Relation(head=0, tail=1, type="located_at")],
        )

    affirmed = located("disorder_present").relation_keys(labels=True)
    negated = located("disorder_notpresent").relation_keys(labels=True)

    assert affirmed.isdisjoint(negated)


def test_relation_keys_surface_are_plain_triplets(graph: KnowledgeGraph) -> None:
    assert graph.relation_keys("surface") == {
        ("Small", "modify", "effusions"),
        ("effusions", "located_at", "LLL"),
    }


def test_relation_index_out_of_range_rejected() -> None:
    with pytest.raises(ValidationError, match="only 1 entities"):
        KnowledgeGraph(
            entities=[_entity("effusion", "disorder_present")],
            relations=[Relation(head=0, tail=1, type="modify")],
        )


def test_entity_span_end_before_start_rejected() -> None:
    with pytest.raises(ValidationError, match="before start"):
        Entity(text="x", start=5, end=2, label="concept", canonical="x")


def test_unknown_label_rejected() -> None:
    with pytest.raises(ValidationError):
        _entity("effusion", "finding")


def test_to_rexkg_layout(graph: KnowledgeGraph) -> None:
    rexkg = graph.to_rexkg()

    assert rexkg["entities"] == {
        "Small": "concept",
        "effusions": "disorder_present",
        "LLL": "anatomy",
    }
    assert rexkg["relations"] == [
        {"source_entity": "Small", "target_entity": "effusions", "type": "modify"},
        {"source_entity": "effusions", "target_entity": "LLL", "type": "located_at"},
    ]


def test_graph_json_round_trip(graph: KnowledgeGraph) -> None:
    assert KnowledgeGraph.model_validate_json(graph.model_dump_json()) == graph
