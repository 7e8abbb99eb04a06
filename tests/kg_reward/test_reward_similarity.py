"""Set similarity metrics, the both-empty rule and item-level comparison."""

from __future__ import annotations

import pytest

from kg_reward.scoring.similarity import compare_sets, set_similarity

# predicted {a, b, c}, reference {b, c, d, e}: 2 shared, 1 extra, 2 missing.
PREDICTED = {("a",), ("b",), ("c",)}
REFERENCE = {("b",), ("c",), ("d",), ("e",)}


def test_set_similarity_jaccard():
    assert set_similarity(PREDICTED, REFERENCE, metric="jaccard") == pytest.approx(2 / 5)


def test_set_similarity_f1():
    precision, recall = 2 / 3, 2 / 4
    expected = 2 * precision * recall / (precision + recall)
    assert set_similarity(PREDICTED, REFERENCE, metric="f1") == pytest.approx(expected)


def test_set_similarity_fbeta_weights_recall():
    precision, recall, beta = 2 / 3, 2 / 4, 2.0
    expected = (1 + beta**2) * precision * recall / (beta**2 * precision + recall)
    assert set_similarity(PREDICTED, REFERENCE, metric="fbeta", beta=beta) == pytest.approx(
        expected
    )


def test_set_similarity_fbeta_beta_one_equals_f1():
    f1 = set_similarity(PREDICTED, REFERENCE, metric="f1")
    assert set_similarity(PREDICTED, REFERENCE, metric="fbeta", beta=1.0) == pytest.approx(f1)


def test_set_similarity_fbeta_prefers_recall_over_precision():
    # Same counts mirrored: high recall/low precision should beat low recall/high precision.
    recall_heavy = set_similarity({1, 2, 3, 4}, {1, 2}, metric="fbeta", beta=2.0)
    precision_heavy = set_similarity({1, 2}, {1, 2, 3, 4}, metric="fbeta", beta=2.0)
    assert recall_heavy > precision_heavy


def test_set_similarity_jaccard_below_f1():
    jaccard = set_similarity(PREDICTED, REFERENCE, metric="jaccard")
    assert jaccard < set_similarity(PREDICTED, REFERENCE, metric="f1")


@pytest.mark.parametrize("metric", ["jaccard", "f1", "fbeta"])
def test_set_similarity_identical_sets_score_one(metric):
    assert set_similarity(REFERENCE, set(REFERENCE), metric=metric) == 1.0


@pytest.mark.parametrize("metric", ["jaccard", "f1", "fbeta"])
def test_set_similarity_disjoint_sets_score_zero(metric):
    assert set_similarity({("x",)}, {("y",)}, metric=metric) == 0.0


@pytest.mark.parametrize("metric", ["jaccard", "f1", "fbeta"])
def test_set_similarity_both_empty_uses_empty_score(metric):
    assert set_similarity(set(), set(), metric=metric) == 1.0
    assert set_similarity(set(), set(), metric=metric, empty_score=0.25) == 0.25


@pytest.mark.parametrize("metric", ["jaccard", "f1", "fbeta"])
def test_set_similarity_one_side_empty_scores_zero(metric):
    assert set_similarity(set(), REFERENCE, metric=metric) == 0.0
    assert set_similarity(PREDICTED, set(), metric=metric) == 0.0


def test_compare_sets_lists_matched_missing_extra():
    comparison = compare_sets(PREDICTED, REFERENCE)

    assert comparison.matched == [["b"], ["c"]]
    assert comparison.missing == [["d"], ["e"]]
    assert comparison.extra == [["a"]]
