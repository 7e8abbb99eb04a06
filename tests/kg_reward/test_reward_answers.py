"""Answer normalization and the exact, set and overlap answer modes."""

from __future__ import annotations

import pytest

from kg_reward.scoring.answers import answer_items, normalize_answer, score_answer


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Yes.", "yes"),
        ("TRUE", "yes"),
        ("present", "yes"),
        ("Positive!", "yes"),
        ("No", "no"),
        ("false", "no"),
        ("Not present.", "no"),
        ("negative", "no"),
        ("The left  lower lobe", "left lower lobe"),
        ("Pleural-effusion", "pleural effusion"),
        ("  ", ""),
    ],
)
def test_normalize_answer_cases(text, expected):
    assert normalize_answer(text) == expected


def test_normalize_answer_keeps_synonym_inside_longer_answer():
    assert normalize_answer("present in the left lung") == "present in left lung"


def test_answer_items_split_on_commas_and_and():
    assert answer_items("Effusion, atelectasis and the pneumothorax") == {
        "effusion",
        "atelectasis",
        "pneumothorax",
    }


def test_answer_items_split_on_semicolon_and_ampersand():
    assert answer_items("edema; effusion & cardiomegaly") == {"edema", "effusion", "cardiomegaly"}


def test_score_answer_exact_matches_normalized():
    assert score_answer("The Effusion.", "effusion", "exact") == 1.0


def test_score_answer_exact_yes_synonyms():
    assert score_answer("present", "Yes", "exact") == 1.0
    assert score_answer("absent", "yes", "exact") == 0.0


def test_score_answer_exact_rejects_list_with_extra_item():
    assert score_answer("effusion, edema", "effusion", "exact") == 0.0


def test_score_answer_set_is_jaccard():
    # {effusion, edema} vs {effusion, atelectasis, edema}: 2 shared of 3.
    assert score_answer(
        "edema and effusion", "effusion, atelectasis, edema", "set"
    ) == pytest.approx(2 / 3)


def test_score_answer_set_ignores_order_and_case():
    assert score_answer("Edema, EFFUSION", "effusion and edema", "set") == 1.0


def test_score_answer_overlap_pays_any_shared_item():
    assert score_answer("effusion, edema, pneumothorax", "edema", "overlap") == 1.0


def test_score_answer_overlap_zero_without_shared_item():
    assert score_answer("pneumothorax", "edema, effusion", "overlap") == 0.0


def test_score_answer_none_without_reference():
    assert score_answer("yes", None, "exact") is None


def test_score_answer_none_for_blank_reference():
    assert score_answer("yes", " . ", "set") is None


@pytest.mark.parametrize("mode", ["exact", "set", "overlap"])
def test_score_answer_zero_without_completion_answer(mode):
    assert score_answer(None, "yes", mode) == 0.0


@pytest.mark.parametrize("mode", ["set", "overlap"])
def test_score_answer_empty_completion_answer_is_zero(mode):
    assert score_answer("", "edema", mode) == 0.0
