"""Entity recognition and normalization of the extraction pipeline."""

from __future__ import annotations

import pytest
import spacy

from kg_reward.extraction import Extractor
from kg_reward.pipeline.entities import LexiconEntityRecognizer, pluralize


def entities(extractor: Extractor, text: str) -> list[tuple[str, str, str]]:
    graph = extractor.extract_one(text)
    return [(e.text, e.label, e.canonical) for e in graph.entities]


def test_entities_multiword_term_wins_over_parts(extractor: Extractor) -> None:
    found = entities(extractor, "Opacity in the left lower lobe.")

    assert ("left lower lobe", "anatomy", "left lower lobe") in found
    assert not any(text in ("left", "lobe") for text, _, _ in found)


def test_entities_pleural_effusion_is_one_entity(extractor: Extractor) -> None:
    found = entities(extractor, "Small pleural effusion.")

    assert ("pleural effusion", "disorder_present", "pleural effusion") in found
    assert len([f for f in found if f[1] == "disorder_present"]) == 1


def test_entities_device_abbreviation_normalized(extractor: Extractor) -> None:
    found = entities(extractor, "The ETT is in good position.")

    assert ("ETT", "devices_present", "endotracheal tube") in found


def test_entities_abbreviation_is_case_sensitive(extractor: Extractor) -> None:
    # "lll" in lower case is not the left lower lobe abbreviation "LLL"
    found = entities(extractor, "Opacity in the LLL. The lll text.")

    assert [f for f in found if f[2] == "left lower lobe"] == [
        ("LLL", "anatomy", "left lower lobe")
    ]


@pytest.mark.parametrize(
    ("text", "surface", "canonical"),
    [
        ("Enlarged heart.", "Enlarged heart", "cardiomegaly"),
        ("Bilateral effusions.", "effusions", "pleural effusion"),
        ("Bibasilar opacities.", "opacities", "opacity"),
        ("Small bilateral pneumothoraces.", "pneumothoraces", "pneumothorax"),
        ("Opacity in the RLL.", "RLL", "right lower lobe"),
    ],
)
def test_entities_canonical_names(
    extractor: Extractor, text: str, surface: str, canonical: str
) -> None:
    by_surface = {f[0]: f[2] for f in entities(extractor, text)}

    assert by_surface[surface] == canonical


def test_entities_laterality_kept_in_canonical(extractor: Extractor) -> None:
    found = entities(extractor, "Right upper lobe nodule.")

    assert ("Right upper lobe", "anatomy", "right upper lobe") in found


def test_entities_offsets_match_text(extractor: Extractor) -> None:
    text = "FINDINGS: Mild cardiomegaly.\n\nIMPRESSION: No pneumothorax."
    graph = extractor.extract_one(text)

    assert graph.entities
    for entity in graph.entities:
        assert text[entity.start : entity.end] == entity.text


def test_entities_measurement_is_size(extractor: Extractor) -> None:
    found = entities(extractor, "A 5.5 cm mass and a 3x4 mm nodule.")

    assert ("5.5 cm", "size", "5.5 cm") in found
    assert ("3x4 mm", "size", "3 x 4 mm") in found


def test_entities_qualitative_size_and_concept(extractor: Extractor) -> None:
    labels = {f[0]: f[1] for f in entities(extractor, "Small effusion. Mild edema.")}

    assert labels["Small"] == "size"
    assert labels["Mild"] == "concept"


def test_entities_procedure_label(extractor: Extractor) -> None:
    found = entities(extractor, "Status post median sternotomy.")

    assert ("median sternotomy", "procedures", "median sternotomy") in found


def test_entities_header_is_not_entity(extractor: Extractor) -> None:
    found = entities(extractor, "FINDINGS: Clear lungs.")

    assert all(text != "FINDINGS" for text, _, _ in found)


def test_pluralize_rules() -> None:
    irregular = {"pneumothorax": "pneumothoraces"}

    assert pluralize("pleural effusion", irregular) == "pleural effusions"
    assert pluralize("opacity", irregular) == "opacities"
    assert pluralize("atelectasis", irregular) == "atelectases"
    assert pluralize("pneumothorax", irregular) == "pneumothoraces"
    assert pluralize("mass", irregular) == "masses"


def blank_recognizer() -> tuple[spacy.language.Language, LexiconEntityRecognizer]:
    nlp = spacy.blank("en")
    recognizer = nlp.add_pipe("kg_entities")
    return nlp, recognizer


def test_recognizer_on_blank_pipeline_with_own_entries() -> None:
    nlp, recognizer = blank_recognizer()
    recognizer.initialize(
        entries=[
            {"label": "disorder", "pattern": "effusion", "canonical": "pleural effusion"},
            {"label": "disorder", "pattern": "pleural effusion"},
        ],
        irregular_plurals={},
    )

    doc = nlp("Two pleural effusions and an effusion.")

    assert [(e.text, e.label_, e.id_) for e in doc.ents] == [
        ("pleural effusions", "disorder", "pleural effusion"),
        ("effusion", "disorder", "pleural effusion"),
    ]


def test_recognizer_conflicting_entries_raise() -> None:
    _, recognizer = blank_recognizer()
    entries = [
        {"label": "disorder", "pattern": "mass", "canonical": "mass"},
        {"label": "anatomy", "pattern": "mass", "canonical": "mass"},
    ]

    with pytest.raises(ValueError, match="already defined"):
        recognizer.initialize(entries=entries, irregular_plurals={})


def test_recognizer_unknown_label_raises() -> None:
    _, recognizer = blank_recognizer()

    with pytest.raises(ValueError, match="label 'finding'"):
        recognizer.initialize(entries=[{"label": "finding", "pattern": "x"}], irregular_plurals={})


def test_recognizer_unknown_key_raises() -> None:
    _, recognizer = blank_recognizer()
    entry = {"label": "disorder", "pattern": "x", "canonicl": "x"}

    with pytest.raises(ValueError, match="unknown keys"):
        recognizer.initialize(entries=[entry], irregular_plurals={})


@pytest.mark.parametrize("gap", ["\n", "\t", "   ", " \n  "])
def test_entities_term_split_by_whitespace(extractor: Extractor, gap: str) -> None:
    text = f"Left pleural{gap}effusion."
    found = entities(extractor, text)

    assert (f"pleural{gap}effusion", "disorder_present", "pleural effusion") in found
    assert not any(canonical == "pleura" for _, _, canonical in found)


def test_entities_wrapped_anatomy_is_one_entity(extractor: Extractor) -> None:
    found = entities(extractor, "Right lower\nlobe pneumonia.")

    assert found == [
        ("Right lower\nlobe", "anatomy", "right lower lobe"),
        ("pneumonia", "disorder_present", "pneumonia"),
    ]


def test_entities_term_not_joined_across_blank_line(extractor: Extractor) -> None:
    found = entities(extractor, "Pleural\n\neffusion")

    assert ("Pleural", "anatomy", "pleura") in found
    assert ("effusion", "disorder_present", "pleural effusion") in found


def test_entities_calcified_nodule_is_nodule(extractor: Extractor) -> None:
    found = entities(extractor, "Calcified nodule in the right upper lobe.")

    assert ("Calcified", "concept", "calcified") in found
    assert ("nodule", "disorder_present", "nodule") in found


def test_entities_calcified_granuloma_is_granuloma(extractor: Extractor) -> None:
    found = entities(extractor, "Calcified granuloma in the left lung.")

    assert ("granuloma", "disorder_present", "granuloma") in found


def test_entities_wrapped_match_length_ignores_whitespace(extractor: Extractor) -> None:
    flat = extractor.extract_one("Cardiomegaly with central vascular congestion.")
    wrapped = extractor.extract_one("Cardiomegaly with central vascular\ncongestion.")

    assert wrapped.entity_keys("canonical") == flat.entity_keys("canonical")
