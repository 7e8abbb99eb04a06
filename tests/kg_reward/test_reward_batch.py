"""RewardScorer batches: one extraction call, the reference cache, per-item references.

``WordExtractor`` replaces the spaCy pipeline where a test counts calls or needs
graphs it can predict: every lowercase word becomes one entity. The real pipeline runs
in ``test_reward_pipeline.py`` and in the service tests.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import pytest

from kg_reward.scoring import RewardScorer, split_reference
from kg_schema import Entity, KnowledgeGraph
from kg_schema.scoring import ScoreItem, ScoreOptions, Weights


class WordExtractor:
    """Graph of a text = one disorder entity per distinct word; records every call."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def extract(
        self, texts: Sequence[str], ids: Sequence[str] | None = None, batch_size: int = 64
    ) -> list[KnowledgeGraph]:
        self.calls.append(list(texts))
        return [self._graph(text) for text in texts]

    @staticmethod
    def _graph(text: str) -> KnowledgeGraph:
        words = sorted(set(re.findall(r"[a-z]+", text.lower())))
        entities = [
            Entity(text=word, start=0, end=len(word), label="disorder_present", canonical=word)
            for word in words
        ]
        return KnowledgeGraph(entities=entities)


def completion(think: str, answer: str) -> str:
    return f"<think>{think}</think><answer>{answer}</answer>"


@pytest.fixture
def extractor() -> WordExtractor:
    return WordExtractor()


@pytest.fixture
def scorer(extractor: WordExtractor) -> RewardScorer:
    return RewardScorer(extractor, cache_size=8)


def test_scorer_extracts_batch_in_one_call(scorer, extractor):
    items = [
        ScoreItem(
            completion=completion("edema", "yes"), reference="<answer>yes</answer> mild edema"
        ),
        ScoreItem(
            completion=completion("effusion", "no"), reference="small effusion <answer>no</answer>"
        ),
    ]
    scorer.score(items)

    assert len(extractor.calls) == 1
    assert len(extractor.calls[0]) == 4


def test_scorer_extracts_duplicate_texts_once(scorer, extractor):
    reference = "<think>edema</think><answer>yes</answer>"
    items = [ScoreItem(completion=completion("edema", "yes"), reference=reference)] * 8
    batch = scorer.score_batch(items)

    # The completion rationale and the reference rationale are both "edema".
    assert extractor.calls == [["edema"]]
    assert batch.stats.cache_misses == 1
    assert batch.response.rewards == [pytest.approx(2.0)] * 8


def test_scorer_caches_reference_graphs(scorer, extractor):
    item = ScoreItem(completion=completion("edema", "yes"), reference="cardiomegaly")
    first = scorer.score_batch([item])
    second = scorer.score_batch([item])

    assert (first.stats.cache_hits, first.stats.cache_misses) == (0, 1)
    assert (second.stats.cache_hits, second.stats.cache_misses) == (1, 0)
    assert extractor.calls[1] == ["edema"]
    assert (scorer.cache.hits, scorer.cache.misses) == (1, 1)


def test_scorer_cache_size_zero_extracts_every_time(extractor):
    scorer = RewardScorer(extractor, cache_size=0)
    item = ScoreItem(completion=completion("edema", "yes"), reference="cardiomegaly")
    scorer.score([item])
    scorer.score([item])

    assert extractor.calls == [["edema", "cardiomegaly"], ["edema", "cardiomegaly"]]


def test_scorer_cached_graph_matches_fresh_graph(scorer):
    item = ScoreItem(completion=completion("edema effusion", "yes"), reference="edema atelectasis")
    fresh = scorer.score([item])
    cached = scorer.score([item])

    assert cached == fresh


def test_scorer_uses_each_items_own_reference(scorer):
    same = completion("edema effusion", "yes")
    items = [
        ScoreItem(completion=same, reference="edema effusion", reference_answer="yes"),
        ScoreItem(completion=same, reference="pneumothorax", reference_answer="no"),
    ]
    response = scorer.score(items)

    assert response.components[0].entity == 1.0
    assert response.components[1].entity == 0.0
    assert response.rewards[0] > response.rewards[1]


def test_scorer_keeps_item_order(scorer):
    items = [
        ScoreItem(completion=completion("a b", "x"), reference="a b c d", reference_answer="x"),
        ScoreItem(completion=completion("a", "x"), reference="a", reference_answer="x"),
        ScoreItem(completion=completion("z", "y"), reference="a", reference_answer="x"),
    ]
    response = scorer.score(items)

    assert [c.entity for c in response.components] == [pytest.approx(0.5), 1.0, 0.0]
    assert [c.answer for c in response.components] == [1.0, 1.0, 0.0]


def test_scorer_empty_batch(scorer, extractor):
    response = scorer.score([], options=ScoreOptions(explain=True))

    assert response.rewards == []
    assert response.components == []
    assert response.explanations == []
    assert extractor.calls == []


def test_scorer_reference_answer_beats_tagged_answer(scorer):
    item = ScoreItem(
        completion=completion("edema", "no"),
        reference="<think>edema</think><answer>yes</answer>",
        reference_answer="no",
    )
    assert scorer.score([item]).components[0].answer == 1.0


def test_scorer_falls_back_to_tagged_answer(scorer):
    item = ScoreItem(
        completion=completion("edema", "no"), reference="<think>edema</think><answer>yes</answer>"
    )
    assert scorer.score([item]).components[0].answer == 0.0


def test_scorer_answer_none_without_any_reference_answer(scorer):
    item = ScoreItem(completion=completion("edema", "yes"), reference="edema")
    response = scorer.score([item], weights=Weights())

    assert response.components[0].answer is None
    assert response.rewards[0] == pytest.approx(1.0)


def test_scorer_explanations_carry_ids(scorer):
    items = [
        ScoreItem(id="a", completion=completion("edema", "yes"), reference="edema effusion"),
        ScoreItem(id="b", completion=completion("edema", "yes"), reference="edema"),
    ]
    response = scorer.score(items, options=ScoreOptions(explain=True))

    assert response.explanations is not None
    assert [explanation.id for explanation in response.explanations] == ["a", "b"]
    assert response.explanations[0].entities.missing == [["effusion", "disorder_present"]]


def test_split_reference_uses_think_block():
    rationale, answer = split_reference(
        "<think>Small effusion.</think><answer>yes</answer>", think_tag="think", answer_tag="answer"
    )
    assert rationale.strip() == "Small effusion."
    assert answer == "yes"


def test_split_reference_untagged_is_whole_text():
    rationale, answer = split_reference(
        "No pneumothorax. Mild edema.", think_tag="think", answer_tag="answer"
    )
    assert rationale == "No pneumothorax. Mild edema."
    assert answer is None


def test_split_reference_drops_answer_block_from_rationale():
    rationale, answer = split_reference(
        "Mild edema. <answer>pleural effusion</answer>", think_tag="think", answer_tag="answer"
    )
    assert "effusion" not in rationale
    assert answer == "pleural effusion"
