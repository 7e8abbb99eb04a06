"""The sentence cache and the graph construction of the extractor give unchanged graphs."""

from __future__ import annotations

import csv
import gc
from pathlib import Path

import pytest

from kg_reward.extraction import Extractor
from kg_reward.labeler import report_text
from kg_reward.sentence_cache import SentenceExtractor
from kg_schema import KnowledgeGraph

DATA_DIR = Path(__file__).parent / "data"

# Texts with section headers, skipped sections, list items, blank lines, repeated sentences,
# markup and control characters, beside the shipped sample reports.
EDGE_TEXTS = [
    "INDICATION: Cough, rule out pneumonia.\nFINDINGS: No pleural effusion. No pneumothorax.\n"
    "IMPRESSION: 1. No pneumothorax. 2. Small left pleural effusion.",
    "HISTORY: pneumonia.\n\nCOMPARISON: none.\n\nFINDINGS:The heart is mildly enlarged.\n\n"
    "Opacity in the left lower lobe may represent atelectasis or pneumonia.",
    "<think>No pneumothorax.\u200b Possible right   pleural effusion.</think><answer>yes</answer>",
    "No pneumothorax. No pneumothorax.  No pneumothorax.\n\nNo pneumothorax",
    "Nodule measuring 5.5 cm in the right upper lobe, e.g. granuloma. Heart size is normal",
    # Hard-wrapped terms and cues, and a term split by a blank line (two sentences).
    "Left pleural\neffusion. Right lower\nlobe pneumonia\tin the right\n\nlung. No\n"
    "evidence of  pneumothorax.",
    # Tokenized alone, the joined sentences split the whitespace after "effusion." differently
    # from the whole text, so the sentence Doc is built from the original tokens.
    "Small left pleural effusion. \n 1. Bullous emphysema. 2. No pneumothorax.",
]


def _sample_texts() -> list[str]:
    with (DATA_DIR / "iu_reports_sample.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [report_text(row["findings"], row["impression"]) for row in rows] + EDGE_TEXTS


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return _sample_texts()


@pytest.fixture(scope="module")
def uncached_graphs(extractor: Extractor, texts: list[str]) -> list[KnowledgeGraph]:
    whole_texts = Extractor(extractor.nlp, cache_size=0, sentence_cache_size=0)
    return whole_texts.extract(texts)


def test_sentence_cache_matches_whole_text_pipeline(
    extractor: Extractor, texts: list[str], uncached_graphs: list[KnowledgeGraph]
) -> None:
    cached = Extractor(extractor.nlp, cache_size=0)

    assert cached.extract(texts) == uncached_graphs


def test_sentence_cache_warm_matches_cold(
    extractor: Extractor, texts: list[str], uncached_graphs: list[KnowledgeGraph]
) -> None:
    cached = Extractor(extractor.nlp, cache_size=0)
    cached.extract(texts)

    assert cached.extract(list(reversed(texts))) == list(reversed(uncached_graphs))


def test_sentence_cache_small_batches_match(
    extractor: Extractor, texts: list[str], uncached_graphs: list[KnowledgeGraph]
) -> None:
    cached = Extractor(extractor.nlp, cache_size=0)

    assert cached.extract(texts, batch_size=3) == uncached_graphs


def test_sentence_cache_size_is_bounded(extractor: Extractor, texts: list[str]) -> None:
    cached = Extractor(extractor.nlp, cache_size=0, sentence_cache_size=5)

    cached.extract(texts)

    assert cached._sentences is not None
    assert len(cached._sentences._cache) == 5


def test_sentence_cache_off_for_other_pipelines(extractor: Extractor) -> None:
    import spacy

    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")

    assert Extractor(nlp)._sentences is None


def test_sentence_cache_negative_size_raises(extractor: Extractor) -> None:
    with pytest.raises(ValueError, match="sentence_cache_size"):
        Extractor(extractor.nlp, sentence_cache_size=-1)


def test_extraction_graph_build_matches_validation(extractor: Extractor, texts: list[str]) -> None:
    graphs = Extractor(extractor.nlp, cache_size=0).extract(
        texts, ids=[str(i) for i in range(len(texts))]
    )

    for graph in graphs:
        validated = KnowledgeGraph.model_validate(graph.model_dump())
        assert validated == graph
        assert validated.model_fields_set == graph.model_fields_set
        for built, checked in zip(graph.entities, validated.entities, strict=True):
            assert built.model_fields_set == checked.model_fields_set


def test_extraction_graph_build_models_are_independent(extractor: Extractor) -> None:
    first, second = Extractor(extractor.nlp).extract(["No pneumothorax.", "No pneumothorax."])

    first.entities[0].canonical = "changed"

    assert second.entities[0].canonical == "pneumothorax"


def test_sentence_cache_token_fallback_matches(
    extractor: Extractor, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = EDGE_TEXTS[-1]
    fallbacks = []
    build = SentenceExtractor._doc_from_tokens

    def counting_build(self: SentenceExtractor, *args: object) -> object:
        fallbacks.append(args)
        return build(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(SentenceExtractor, "_doc_from_tokens", counting_build)
    cached = Extractor(extractor.nlp, cache_size=0).extract_one(text)
    whole = Extractor(extractor.nlp, cache_size=0, sentence_cache_size=0).extract_one(text)

    assert len(fallbacks) == 1
    assert cached == whole


def test_extract_restores_enabled_gc(extractor: Extractor) -> None:
    assert gc.isenabled()

    extractor.extract(["No pneumothorax."])

    assert gc.isenabled()


def test_extract_keeps_disabled_gc(extractor: Extractor) -> None:
    gc.disable()
    try:
        extractor.extract(["No pneumothorax."])
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_extract_leaves_no_reference_cycles(extractor: Extractor, texts: list[str]) -> None:
    # The extractor pauses the cyclic collector because extraction creates no cycles.
    gc.collect()
    gc.disable()
    try:
        Extractor(extractor.nlp, cache_size=0).extract(texts)
        unreachable = gc.collect()
    finally:
        gc.enable()

    assert unreachable == 0
