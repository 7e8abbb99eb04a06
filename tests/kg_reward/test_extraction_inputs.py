"""Extractor behaviour on unusual and invalid input."""

from __future__ import annotations

import pytest

from kg_reward.errors import InputError, TextTooLongError
from kg_reward.extraction import MAX_TEXT_CHARS, Extractor


def test_extract_empty_text_empty_graph(extractor: Extractor) -> None:
    graph = extractor.extract_one("")

    assert graph.entities == []
    assert graph.relations == []


def test_extract_whitespace_text_empty_graph(extractor: Extractor) -> None:
    graph = extractor.extract_one(" \n\t ")

    assert graph.entities == []


def test_extract_text_at_limit_accepted(extractor: Extractor) -> None:
    text = ("No effusion. " * (MAX_TEXT_CHARS // 13 + 1))[:MAX_TEXT_CHARS]

    graph = extractor.extract_one(text)

    assert len(graph.entities) > 1000


def test_extract_text_over_limit_raises(extractor: Extractor) -> None:
    with pytest.raises(TextTooLongError, match="100000"):
        extractor.extract_one("a" * (MAX_TEXT_CHARS + 1))


def test_extract_too_long_is_input_error(extractor: Extractor) -> None:
    with pytest.raises(InputError):
        extractor.extract(["ok", "b" * (MAX_TEXT_CHARS + 1)])


def test_extract_non_str_raises(extractor: Extractor) -> None:
    with pytest.raises(InputError, match="text 1 is a int"):
        extractor.extract(["No effusion.", 5])  # type: ignore[list-item]


def test_extract_ids_length_mismatch_raises(extractor: Extractor) -> None:
    with pytest.raises(InputError, match="ids has 1 entries"):
        extractor.extract(["a", "b"], ids=["x"])


def test_extract_control_characters_offsets_valid(extractor: Extractor) -> None:
    text = "No\x00 pneumothorax.\x07\x1b Small\u200b effusion.\r\n"

    graph = extractor.extract_one(text)

    assert {e.canonical for e in graph.entities} >= {"pneumothorax", "pleural effusion"}
    for entity in graph.entities:
        assert text[entity.start : entity.end] == entity.text


@pytest.mark.parametrize(
    "text",
    [
        "Kein Erguss, das Herz ist unauffällig.",
        "肺野清晰，无胸腔积液。",
        "qzx vvlk 83;; ,,, ))(( @@@",
        "\U0001f600" * 50,
    ],
)
def test_extract_foreign_or_random_text_no_entities(extractor: Extractor, text: str) -> None:
    graph = extractor.extract_one(text)

    assert graph.entities == []


def test_extract_unbalanced_tags_treated_as_text(extractor: Extractor) -> None:
    graph = extractor.extract_one("<think>Small effusion.</answer> <answer")

    assert [e.canonical for e in graph.entities if e.label.startswith("disorder")] == [
        "pleural effusion"
    ]


def test_extract_keeps_order_and_ids(extractor: Extractor) -> None:
    graphs = extractor.extract(["No effusion.", "", "Cardiomegaly."], ids=["a", "b", "c"])

    assert [g.id for g in graphs] == ["a", "b", "c"]
    assert graphs[1].entities == []
    assert graphs[2].entities[0].canonical == "cardiomegaly"


def test_extract_duplicate_texts_equal_graphs(extractor: Extractor) -> None:
    first, second = extractor.extract(["Small effusion.", "Small effusion."])

    assert first == second


def test_extract_cache_returns_independent_graphs(extractor: Extractor) -> None:
    cached = Extractor(extractor.nlp, cache_size=4)
    first = cached.extract_one("Small effusion.")
    first.entities.clear()

    second = cached.extract_one("Small effusion.")

    assert len(second.entities) == 2


def test_extract_graph_passes_schema_validation(extractor: Extractor) -> None:
    graph = extractor.extract_one("Opacity in the left lower lobe, likely pneumonia.", id="r1")

    again = type(graph).model_validate(graph.model_dump())

    assert again == graph
