from __future__ import annotations

import json
import math

import pytest
from pydantic import ValidationError

from kg_schema import ExtractRequest, ScoreItem, ScoreOptions, ScoreRequest, Weights


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


def test_weights_reject_above_maximum() -> None:
    with pytest.raises(ValidationError, match="at most 1e\\+06"):
        Weights(entity=1e308)


def test_weights_accept_maximum() -> None:
    assert Weights(entity=1e6).entity == 1e6


@pytest.mark.parametrize("value", ["0.5", True])
def test_weights_reject_string_and_bool(value: object) -> None:
    with pytest.raises(ValidationError, match="valid number"):
        Weights.model_validate_json(f'{{"entity": {json.dumps(value)}}}')


def test_weights_accept_integer() -> None:
    assert Weights.model_validate_json('{"entity": 1}').entity == 1.0


def test_options_explain_rejects_string() -> None:
    with pytest.raises(ValidationError, match="valid boolean"):
        ScoreOptions.model_validate_json('{"explain": "yes"}')


def test_score_item_rejects_lone_surrogate() -> None:
    with pytest.raises(ValidationError, match="lone UTF-16 surrogate"):
        ScoreItem(completion="\ud800 effusion", reference="Effusion.")


def test_score_item_rejects_blank_reference() -> None:
    with pytest.raises(ValidationError, match="must contain text"):
        ScoreItem(completion="Effusion.", reference=" \n")


def test_score_item_accepts_empty_completion() -> None:
    assert ScoreItem(completion="", reference="Effusion.").completion == ""


def test_extract_request_rejects_lone_surrogate() -> None:
    with pytest.raises(ValidationError, match="lone UTF-16 surrogate"):
        ExtractRequest(texts=["ok", "\udfff"])
