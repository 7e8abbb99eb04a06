"""Composite reward of one item on hand-built graphs, presets and explanations."""

from __future__ import annotations

import pytest

from kg_reward.scoring import score_item
from kg_schema import Entity, KnowledgeGraph, Relation
from kg_schema.scoring import ScoreOptions, Weights


def make_graph(entities: list[tuple[str, str, str]], relations=()) -> KnowledgeGraph:
    """Build a graph from (surface text, label, canonical) triples and (head, tail, type)."""
    return KnowledgeGraph(
        entities=[
            Entity(text=text, start=0, end=len(text), label=label, canonical=canonical)
            for text, label, canonical in entities
        ],
        relations=[Relation(head=head, tail=tail, type=kind) for head, tail, kind in relations],
    )


# "Small effusion in the left lung."
REFERENCE = make_graph(
    [
        ("small", "size", "small"),
        ("effusion", "disorder_present", "pleural effusion"),
        ("left lung", "anatomy", "left lung"),
    ],
    [(0, 1, "modify"), (1, 2, "located_at")],
)
# "Effusions in the left lung and a pneumothorax."
COMPLETION = make_graph(
    [
        ("effusions", "disorder_present", "pleural effusion"),
        ("left lung", "anatomy", "left lung"),
        ("pneumothorax", "disorder_present", "pneumothorax"),
    ],
    [(0, 1, "located_at")],
)


def score(**overrides):
    arguments = {
        "completion_answer": "Yes",
        "well_formed": True,
        "completion_graph": COMPLETION,
        "reference_graph": REFERENCE,
        "reference_answer": "yes",
        "weights": Weights(),
        "options": ScoreOptions(),
    }
    arguments.update(overrides)
    return score_item(**arguments)


def test_score_item_canonical_components():
    result = score()

    # Entities: 2 shared of 4 distinct keys; relations: 1 shared of 2.
    assert result.components.answer == 1.0
    assert result.components.entity == pytest.approx(0.5)
    assert result.components.relation == pytest.approx(0.5)


def test_score_item_default_weights_composite():
    assert score().reward == pytest.approx(1.0 + 0.5 * 0.5 + 0.5 * 0.5)


def test_score_item_surface_match_uses_text():
    result = score(options=ScoreOptions(match="surface"))

    # Only "left lung" is spelled the same; no relation triplet is.
    assert result.components.entity == pytest.approx(1 / 5)
    assert result.components.relation == 0.0


def test_score_item_f1_metric():
    result = score(options=ScoreOptions(metric="f1"))

    assert result.components.entity == pytest.approx(2 / 3)
    assert result.components.relation == pytest.approx(2 / 3)


def test_score_item_fbeta_metric_uses_beta():
    result = score(options=ScoreOptions(metric="fbeta", beta=3.0))

    # Relations: precision 1, recall 1/2; F3 = 10 * 0.5 / (9 + 0.5).
    assert result.components.relation == pytest.approx(10 * 0.5 / 9.5)


def test_score_item_missing_reference_answer_is_none():
    result = score(reference_answer=None)

    assert result.components.answer is None
    assert result.reward == pytest.approx(0.5 * 0.5 + 0.5 * 0.5)


def test_score_item_wrong_answer_scores_zero():
    assert score(completion_answer="no").components.answer == 0.0


def test_score_item_missing_completion_answer_scores_zero():
    assert score(completion_answer=None).components.answer == 0.0


def test_score_item_format_reported_at_zero_weight():
    assert score(well_formed=False).components.format == 0.0
    assert score(well_formed=True).components.format == 1.0


def test_score_item_format_weight_adds_to_reward():
    weights = Weights(answer=0.0, entity=0.0, relation=0.0, format=0.2)

    assert score(weights=weights).reward == pytest.approx(0.2)
    assert score(weights=weights, well_formed=False).reward == 0.0


def test_score_item_custom_weights():
    weights = Weights(answer=2.0, entity=1.0, relation=0.0)

    assert score(weights=weights).reward == pytest.approx(2.0 + 0.5)


def test_score_item_empty_graphs_use_empty_score():
    empty = KnowledgeGraph()
    result = score(completion_graph=empty, reference_graph=empty)

    assert result.components.entity == 1.0
    assert result.components.relation == 1.0
    assert result.reward == pytest.approx(2.0)


def test_score_item_empty_graphs_custom_empty_score():
    empty = KnowledgeGraph()
    result = score(
        completion_graph=empty, reference_graph=empty, options=ScoreOptions(empty_score=0.0)
    )

    assert result.components.entity == 0.0
    assert result.reward == pytest.approx(1.0)


def test_score_item_empty_completion_graph_scores_zero():
    result = score(completion_graph=KnowledgeGraph())

    assert result.components.entity == 0.0
    assert result.components.relation == 0.0


def test_score_item_chexpo_preset_overrides_options():
    options = ScoreOptions(preset="chexpo", answer_mode="exact", metric="f1", match="canonical")
    result = score(options=options, completion_answer="edema, yes")

    # Published reward: overlap answer, surface match, Jaccard.
    assert result.components.answer == 1.0
    assert result.components.entity == pytest.approx(1 / 5)
    assert result.components.relation == 0.0
    assert result.reward == pytest.approx(1.0 + 0.5 * 0.2)


def test_score_item_no_explanation_by_default():
    assert score().explanation is None


def test_score_item_explanation_lists_entities():
    explanation = score(options=ScoreOptions(explain=True), item_id="case-7").explanation

    assert explanation is not None
    assert explanation.id == "case-7"
    assert explanation.completion_answer == "Yes"
    assert explanation.reference_answer == "yes"
    assert explanation.entities.matched == [
        ["left lung", "anatomy"],
        ["pleural effusion", "disorder_present"],
    ]
    assert explanation.entities.missing == [["small", "size"]]
    assert explanation.entities.extra == [["pneumothorax", "disorder_present"]]


def test_score_item_explanation_lists_relations():
    explanation = score(options=ScoreOptions(explain=True)).explanation

    assert explanation is not None
    assert explanation.relations.matched == [
        ["pleural effusion", "disorder_present", "located_at", "left lung", "anatomy"]
    ]
    assert explanation.relations.missing == [
        ["small", "size", "modify", "pleural effusion", "disorder_present"]
    ]
    assert explanation.relations.extra == []


def test_score_item_negated_relation_does_not_match():
    # "No left pleural effusion." against the reference's affirmed effusion.
    negated = make_graph(
        [
            ("effusion", "disorder_notpresent", "pleural effusion"),
            ("left lung", "anatomy", "left lung"),
        ],
        [(0, 1, "located_at")],
    )
    result = score(completion_graph=negated)

    assert result.components.relation == 0.0


def test_score_item_surface_relations_keep_plain_triplets():
    options = ScoreOptions(explain=True, match="surface")
    explanation = score(options=options).explanation

    assert explanation is not None
    assert ["small", "modify", "effusion"] in explanation.relations.missing


def test_score_item_explanation_follows_match_mode():
    options = ScoreOptions(explain=True, match="surface")
    explanation = score(options=options).explanation

    assert explanation is not None
    assert ["effusions", "disorder_present"] in explanation.entities.extra
    assert ["effusion", "disorder_present"] in explanation.entities.missing
