"""Sentence and section splitting of the extraction pipeline."""

from __future__ import annotations

import spacy

from kg_reward.extraction import Extractor


def sentences(extractor: Extractor, text: str) -> list[str]:
    return [sentence.text for sentence in extractor.nlp(text).sents]


def test_sections_decimal_stays_in_sentence(extractor: Extractor) -> None:
    assert sentences(extractor, "A 5.5 cm mass. No effusion.") == [
        "A 5.5 cm mass.",
        "No effusion.",
    ]


def test_sections_header_is_own_sentence(extractor: Extractor) -> None:
    found = sentences(extractor, "FINDINGS: Clear lungs. IMPRESSION: Normal chest.")

    assert found == ["FINDINGS:", "Clear lungs.", "IMPRESSION:", "Normal chest."]


def test_sections_names_from_headers(extractor: Extractor) -> None:
    doc = extractor.nlp("INDICATION: Cough. FINDINGS: Clear lungs. Impression: Normal.")

    names = [(sentence.text, sentence._.section) for sentence in doc.sents]

    assert ("Cough.", "indication") in names
    assert ("Clear lungs.", "findings") in names
    assert ("Normal.", "impression") in names


def test_sections_numbered_items_split(extractor: Extractor) -> None:
    found = sentences(extractor, "1. No acute disease 2. Stable cardiomegaly.")

    assert found == ["1. No acute disease", "2. Stable cardiomegaly."]


def test_sections_numbered_marker_not_sentence(extractor: Extractor) -> None:
    found = sentences(extractor, "IMPRESSION: 1. Small effusion. 2. No pneumothorax.")

    assert found == ["IMPRESSION:", "1. Small effusion.", "2. No pneumothorax."]


def test_sections_abbreviation_does_not_split(extractor: Extractor) -> None:
    found = sentences(extractor, "Devices, e.g. lines, are present.")

    assert found == ["Devices, e.g. lines, are present."]


def test_sections_blank_line_splits(extractor: Extractor) -> None:
    assert len(sentences(extractor, "Cardiomegaly\n\nNo effusion")) == 2


def test_sections_indication_entities_skipped(extractor: Extractor) -> None:
    graph = extractor.extract_one("INDICATION: Pneumonia? FINDINGS: No pneumothorax.")

    assert {e.canonical for e in graph.entities} == {"pneumothorax"}


def test_sections_component_on_blank_pipeline() -> None:
    nlp = spacy.blank("en")
    sections = nlp.add_pipe("kg_sections")
    sections.initialize(titles=[{"title": "NOTE:", "section": "note", "any_case": False}])

    doc = nlp("NOTE: Heart normal. Lungs clear.")

    assert [s.text for s in doc.sents] == ["NOTE:", "Heart normal.", "Lungs clear."]
    assert doc._.sections[-1][2] == "note"
