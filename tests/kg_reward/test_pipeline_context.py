"""Negation and uncertainty (assertion status) of the extraction pipeline."""

from __future__ import annotations

import pytest

from kg_reward.extraction import Extractor


def status(extractor: Extractor, text: str) -> dict[str, tuple[str, str]]:
    """Map canonical name -> (label, assertion) for the entities of ``text``."""
    graph = extractor.extract_one(text)
    return {e.canonical: (e.label, e.assertion) for e in graph.entities}


def test_context_plain_finding_present(extractor: Extractor) -> None:
    assert status(extractor, "Right pneumothorax.")["pneumothorax"] == (
        "disorder_present",
        "present",
    )


@pytest.mark.parametrize(
    "text",
    [
        "No pneumothorax.",
        "There is no evidence of pneumothorax.",
        "Negative for pneumothorax.",
        "Lungs are free of pneumothorax.",
        "The pneumothorax has resolved.",
        "Pneumothorax is not seen.",
        "Without pneumothorax.",
    ],
)
def test_context_negation_cues(extractor: Extractor, text: str) -> None:
    assert status(extractor, text)["pneumothorax"] == ("disorder_notpresent", "absent")


def test_context_negated_list(extractor: Extractor) -> None:
    found = status(extractor, "No focal consolidation, pleural effusion, or pneumothorax.")

    assert found["consolidation"][1] == "absent"
    assert found["pleural effusion"][1] == "absent"
    assert found["pneumothorax"][1] == "absent"


def test_context_negation_stops_at_but(extractor: Extractor) -> None:
    found = status(extractor, "No pneumothorax but there is a small pleural effusion.")

    assert found["pneumothorax"][1] == "absent"
    assert found["pleural effusion"] == ("disorder_present", "present")


def test_context_negation_stops_at_sentence_end(extractor: Extractor) -> None:
    found = status(extractor, "No pneumothorax. Pleural effusion.")

    assert found["pleural effusion"][1] == "present"


def test_context_negation_stops_at_which(extractor: Extractor) -> None:
    found = status(extractor, "No change in the nodule, which is suspicious for malignancy.")

    assert found["nodule"][1] == "present"
    assert found["malignancy"][1] == "uncertain"


@pytest.mark.parametrize(
    "text",
    [
        "Opacity may represent pneumonia.",
        "Possible pneumonia.",
        "Pneumonia cannot be excluded.",
        "Cannot exclude pneumonia.",
        "Findings suggestive of pneumonia.",
        "Likely pneumonia.",
        "Concerning for pneumonia.",
    ],
)
def test_context_uncertainty_cues(extractor: Extractor, text: str) -> None:
    assert status(extractor, text)["pneumonia"] == ("disorder_present", "uncertain")


def test_context_versus_hedges_both_sides(extractor: Extractor) -> None:
    found = status(extractor, "Atelectasis versus pneumonia.")

    assert found["atelectasis"][1] == "uncertain"
    assert found["pneumonia"][1] == "uncertain"


def test_context_nearest_cue_wins(extractor: Extractor) -> None:
    found = status(extractor, "Possible small pleural effusion, no pneumothorax.")

    assert found["pleural effusion"][1] == "uncertain"
    assert found["pneumothorax"][1] == "absent"


def test_context_pseudo_negation_keeps_present(extractor: Extractor) -> None:
    found = status(extractor, "No change in the left pleural effusion.")

    assert found["pleural effusion"][1] == "present"


def test_context_clear_lungs_mean_absent_opacity(extractor: Extractor) -> None:
    found = status(extractor, "The lungs are clear.")

    assert found["opacity"] == ("disorder_notpresent", "absent")


def test_context_removed_device_notpresent(extractor: Extractor) -> None:
    found = status(extractor, "The endotracheal tube has been removed.")

    assert found["endotracheal tube"] == ("devices_notpresent", "absent")


def test_context_anatomy_stays_present(extractor: Extractor) -> None:
    found = status(extractor, "No effusion in the left lung.")

    assert found["left lung"] == ("anatomy", "present")


def test_context_termination_cue_governs_nothing(extractor: Extractor) -> None:
    found = status(extractor, "Without evidence of pneumothorax, there is mild cardiomegaly.")

    assert found["pneumothorax"][1] == "absent"
    assert found["cardiomegaly"][1] == "present"


def test_context_unlikely_is_negation(extractor: Extractor) -> None:
    assert status(extractor, "Pulmonary edema is unlikely.")["pulmonary edema"][1] == "absent"


def test_context_negation_stops_at_new_clause(extractor: Extractor) -> None:
    found = status(extractor, "There is no pleural effusion and the heart is enlarged.")

    assert found["pleural effusion"][1] == "absent"
    assert found["enlargement"][1] == "present"


def test_context_cue_split_by_line_break(extractor: Extractor) -> None:
    found = status(extractor, "Pneumothorax is not\nseen.")

    assert found["pneumothorax"] == ("disorder_notpresent", "absent")


@pytest.mark.parametrize("cue", ["may be due to", "could be due to", "likely due to"])
def test_context_due_to_hedge_is_uncertain(extractor: Extractor, cue: str) -> None:
    found = status(extractor, f"Opacity {cue} atelectasis or infiltrate.")

    assert found["opacity"] == ("disorder_present", "present")
    assert found["atelectasis"] == ("disorder_present", "uncertain")
    assert found["infiltrate"] == ("disorder_present", "uncertain")


def test_context_difficult_to_exclude_backward(extractor: Extractor) -> None:
    found = status(extractor, "Pulmonary edema difficult to entirely exclude.")

    assert found["pulmonary edema"] == ("disorder_present", "uncertain")


def test_context_with_described_finding_ends_negation(extractor: Extractor) -> None:
    found = status(extractor, "No cardiomegaly with bilateral small pleural effusions.")

    assert found["cardiomegaly"] == ("disorder_notpresent", "absent")
    assert found["pleural effusion"] == ("disorder_present", "present")


def test_context_bare_with_stays_negated(extractor: Extractor) -> None:
    found = status(extractor, "No effusion with blunting of the costophrenic angle.")

    assert found["pleural effusion"] == ("disorder_notpresent", "absent")
    assert found["blunting"] == ("disorder_notpresent", "absent")


def test_context_scope_skips_line_breaks(extractor: Extractor) -> None:
    text = "No pneumonia, effusions,\nedema, pneumothorax, adenopathy, nodules\nor masses."
    found = status(extractor, text)

    assert found["mass"] == ("disorder_notpresent", "absent")
