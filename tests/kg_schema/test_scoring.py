from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from kg_schema import ExtractRequest, ScoreOptions, ScoreRequest, Weights


def test_weights_defaults_follow_method() -> None:
    weights = Weights()

    assert weights.answer == 1.0
    assert weights.entity == 0.5
    assert weights.relation == 0.5
    assert weights.format == 0.0


@pytest.mark.parametrize("value", [-0.1, math.nan, math.inf])
def test_weights_reject_negative_and_non_finite(value: float) -> None:
    with pytest.raises(ValidationError, match="finite number >= 0"):
        Weights(entity=value)


def test_options_chexpo_preset_overrides_fields() -> None:
    options = ScoreOptions(preset="chexpo", answer_mode="exact", match="canonical", metric="f1")

    assert options.answer_mode == "overlap"
    assert options.match == "surface"
    assert options.metric == "jaccard"
    assert options.empty_score == 1.0


def test_options_unknown_field_rejected() -> None:
    with pytest.raises(ValidationError, match="extra_forbidden|Extra inputs"):
        ScoreOptions.model_validate({"metric": "jaccard", "metrik": "f1"})


def test_score_request_item_requires_completion() -> None:
    with pytest.raises(ValidationError, match="completion"):
        ScoreRequest.model_validate({"items": [{"reference": "No effusion."}]})


def test_extract_request_ids_length_mismatch() -> None:
    with pytest.raises(ValidationError, match="one id per text"):
        ExtractRequest(texts=["a", "b"], ids=["1"])
