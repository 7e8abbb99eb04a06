"""The reward on graphs from the real extraction pipeline."""

from __future__ import annotations

import pytest

from kg_reward.scoring import RewardScorer
from kg_schema.scoring import ScoreItem, ScoreOptions


@pytest.fixture
def scorer(extractor) -> RewardScorer:
    return RewardScorer(extractor, cache_size=16)


def think(text: str, answer: str = "yes") -> str:
    return f"<think>{text}</think><answer>{answer}</answer>"


def test_reward_identical_rationale_scores_full(scorer):
    text = "Small left pleural effusion. Mild cardiomegaly."
    response = scorer.score([ScoreItem(completion=think(text), reference=think(text))])

    assert response.components[0].entity == 1.0
    assert response.components[0].relation == 1.0
    assert response.rewards[0] == pytest.approx(2.0)


def test_reward_negated_finding_does_not_match(scorer):
    item = ScoreItem(
        completion=think("No pleural effusion."), reference=think("Small pleural effusion.")
    )
    response = scorer.score([item], options=ScoreOptions(explain=True))

    explanation = response.explanations[0]
    assert ["pleural effusion", "disorder_notpresent"] in explanation.entities.extra
    assert ["pleural effusion", "disorder_present"] in explanation.entities.missing


def test_reward_canonical_match_ignores_case_and_plural(scorer):
    item = ScoreItem(
        completion=think("Bilateral pleural effusions."),
        reference=think("bilateral pleural effusion."),
    )
    canonical = scorer.score([item]).components[0].entity
    surface = scorer.score([item], options=ScoreOptions(match="surface")).components[0].entity

    assert canonical == 1.0
    assert surface < canonical


def test_reward_per_item_references_differ(scorer):
    completion = think("Small left pleural effusion.")
    items = [
        ScoreItem(completion=completion, reference=think("Small left pleural effusion.")),
        ScoreItem(completion=completion, reference=think("Right upper lobe pneumonia.")),
    ]
    rewards = scorer.score(items).rewards

    assert rewards[0] > rewards[1]
