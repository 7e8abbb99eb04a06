"""spaCy factories of the kg_reward pipeline; importing this module registers them.

Each factory is a thin typed wrapper with keyword-only options. Patterns and cue lists are not
part of the config: ``initialize`` loads them from the packaged data files and ``to_disk`` /
``from_disk`` save and restore them with the pipeline directory.
"""

from __future__ import annotations

from spacy.language import Language

from kg_reward.pipeline.context import AssertionDetector
from kg_reward.pipeline.entities import LexiconEntityRecognizer
from kg_reward.pipeline.relations import RelationExtractor
from kg_reward.pipeline.sections import ReportSentencizer


@Language.factory("kg_sections")
def make_sections(nlp: Language, name: str) -> ReportSentencizer:
    """Split sentences and report sections (FINDINGS:, IMPRESSION: ...)."""
    return ReportSentencizer(nlp, name)


@Language.factory("kg_entities")
def make_entities(nlp: Language, name: str) -> LexiconEntityRecognizer:
    """Recognize anatomy, disorders, devices, procedures, concepts and sizes from lexicons."""
    return LexiconEntityRecognizer(nlp, name)


@Language.factory(
    "kg_context",
    default_config={
        "target_labels": ["disorder", "device", "procedure"],
        "max_scope_tokens": 12,
    },
)
def make_context(
    nlp: Language, name: str, *, target_labels: list[str], max_scope_tokens: int
) -> AssertionDetector:
    """Mark entities present, absent or uncertain from negation and uncertainty cues."""
    return AssertionDetector(
        nlp, name, target_labels=target_labels, max_scope_tokens=max_scope_tokens
    )


@Language.factory("kg_relations", default_config={"max_gap_tokens": 6})
def make_relations(nlp: Language, name: str, *, max_gap_tokens: int) -> RelationExtractor:
    """Add modify, located_at and suggestive_of relations within each sentence."""
    return RelationExtractor(nlp, name, max_gap_tokens=max_gap_tokens)
