"""The composite process reward of completions against their own references.

For each item, with its own completion and its own reference:

- ``answer``: the completion's ``<answer>`` against ``reference_answer``, else against
  the reference's own ``<answer>`` block (modes in ``kg_reward.scoring.answers``). None
  when neither exists, and then it adds 0 to the reward.
- ``entity`` and ``relation``: set similarity between the graph of the completion's
  rationale and the graph of the reference rationale, both taken by ``parse_completion``:
  the ``<think>`` blocks when there are any, else the whole text without its ``<answer>``
  block, so that the answer words do not enter the graph.
- ``format``: 1.0 when the completion is well formed (one closed think block followed by
  one closed answer block), else 0.0. It is always reported, even at weight 0, because
  the rate of malformed completions is worth logging on its own.

reward = w_answer * answer + w_entity * entity + w_relation * relation + w_format * format,
with a None component counting as 0.

Entities match as (name, label). In ``canonical`` mode relations match as (head name,
head label, relation type, tail name, tail label), so a negated finding
(``disorder_notpresent``) never matches an affirmed one. In ``surface`` mode relations are
plain (head text, type, tail text) triplets, as the published CheXPO-v2 code has them.

Behaviours to know before tuning a run:

- The ``chexpo`` preset matches surface text exactly, so it is case-sensitive as published:
  "Effusion" and "effusion" are different entities.
- Uncertain (hedged) findings carry ``*_present`` labels, the ReXKG convention, so
  "possible effusion" matches "effusion".
- Two empty sets score ``empty_score`` (1.0 by default, as published). A rationale with
  no findings against a reference with no findings therefore gets full entity and
  relation credit; raise the format weight or lower ``empty_score`` to counter it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Protocol

from kg_reward.scoring.answers import score_answer
from kg_reward.scoring.cache import ReferenceCache, ReferenceEntry, reference_key
from kg_reward.scoring.similarity import compare_sets, set_similarity
from kg_reward.tags import parse_completion
from kg_schema import KnowledgeGraph
from kg_schema.scoring import (
    Components,
    Explanation,
    ScoreItem,
    ScoreOptions,
    ScoreResponse,
    Weights,
)

logger = logging.getLogger(__name__)


class GraphExtractor(Protocol):
    """The part of ``kg_reward.extraction.Extractor`` that the scorer calls."""

    def extract(
        self, texts: Sequence[str], ids: Sequence[str] | None = None, batch_size: int = 64
    ) -> list[KnowledgeGraph]: ...


@dataclass(frozen=True)
class ItemScore:
    reward: float
    components: Components
    explanation: Explanation | None


@dataclass(frozen=True)
class BatchStats:
    """Counts of one scored batch; cache lookups count once per distinct reference."""

    cache_hits: int
    cache_misses: int
    texts_extracted: int


@dataclass(frozen=True)
class ScoredBatch:
    response: ScoreResponse
    stats: BatchStats


def score_item(
    *,
    completion_answer: str | None,
    well_formed: bool,
    completion_graph: KnowledgeGraph,
    reference_graph: KnowledgeGraph,
    reference_answer: str | None,
    weights: Weights,
    options: ScoreOptions,
    item_id: str | None = None,
) -> ItemScore:
    """Compute the components and the composite reward of one parsed completion."""
    predicted_entities = completion_graph.entity_keys(options.match)
    expected_entities = reference_graph.entity_keys(options.match)
    labels = options.match == "canonical"
    predicted_relations = completion_graph.relation_keys(options.match, labels=labels)
    expected_relations = reference_graph.relation_keys(options.match, labels=labels)

    similarity = partial(
        set_similarity, metric=options.metric, beta=options.beta, empty_score=options.empty_score
    )
    components = Components(
        answer=score_answer(completion_answer, reference_answer, options.answer_mode),
        entity=similarity(predicted_entities, expected_entities),
        relation=similarity(predicted_relations, expected_relations),
        format=1.0 if well_formed else 0.0,
    )
    reward = (
        weights.answer * (components.answer or 0.0)
        + weights.entity * (components.entity or 0.0)
        + weights.relation * (components.relation or 0.0)
        + weights.format * (components.format or 0.0)
    )

    explanation = None
    if options.explain:
        explanation = Explanation(
            id=item_id,
            completion_answer=completion_answer,
            reference_answer=reference_answer,
            entities=compare_sets(predicted_entities, expected_entities),
            relations=compare_sets(predicted_relations, expected_relations),
        )
    return ItemScore(reward=reward, components=components, explanation=explanation)


class RewardScorer:
    """Scores batches of items with one extractor and a cache of reference graphs.

    Each batch runs a single ``extract`` call over the distinct completion rationales and
    the distinct references missing from the cache. Extraction is serialized by a lock
    because a spaCy pipeline is not documented as safe to run from several threads.
    """

    def __init__(
        self,
        extractor: GraphExtractor,
        *,
        cache_size: int = 4096,
        think_tag: str = "think",
        answer_tag: str = "answer",
    ) -> None:
        self.extractor = extractor
        self.cache = ReferenceCache(cache_size)
        self.think_tag = think_tag
        self.answer_tag = answer_tag
        self._extract_lock = threading.Lock()

    def extract(
        self, texts: Sequence[str], ids: Sequence[str] | None = None
    ) -> list[KnowledgeGraph]:
        """Extract the graphs of ``texts`` in one pipeline pass, under the extraction lock."""
        if not texts:
            return []
        with self._extract_lock:
            return self.extractor.extract(texts, ids=ids, batch_size=len(texts))

    def score(
        self,
        items: Sequence[ScoreItem],
        *,
        weights: Weights | None = None,
        options: ScoreOptions | None = None,
    ) -> ScoreResponse:
        """Score ``items`` in order; see ``score_batch`` for the counts."""
        return self.score_batch(items, weights=weights, options=options).response

    def score_batch(
        self,
        items: Sequence[ScoreItem],
        *,
        weights: Weights | None = None,
        options: ScoreOptions | None = None,
    ) -> ScoredBatch:
        """Score ``items`` in order and return the response with the batch's counts."""
        weights = weights or Weights()
        options = options or ScoreOptions()
        tags = {"think_tag": self.think_tag, "answer_tag": self.answer_tag}
        parsed = [parse_completion(item.completion, **tags) for item in items]

        # Every distinct text gets one slot in the single extraction call.
        slots: dict[str, int] = {}
        completion_slots = [slots.setdefault(p.think, len(slots)) for p in parsed]
        keys = [reference_key(item.reference, **tags) for item in items]
        references, pending, hits = self._lookup_references(items, keys, slots)

        graphs = self.extract(list(slots))
        for key, (slot, tagged_answer) in pending.items():
            entry = ReferenceEntry(graph=graphs[slot], tagged_answer=tagged_answer)
            self.cache.put(key, entry)
            references[key] = entry

        scores = []
        for item, key, completion, slot in zip(items, keys, parsed, completion_slots, strict=True):
            reference = references[key]
            scores.append(
                score_item(
                    completion_answer=completion.answer,
                    well_formed=completion.well_formed,
                    completion_graph=graphs[slot],
                    reference_graph=reference.graph,
                    reference_answer=_first_answer(item.reference_answer, reference.tagged_answer),
                    weights=weights,
                    options=options,
                    item_id=item.id,
                )
            )

        explanations = None
        if options.explain:
            explanations = [score.explanation for score in scores if score.explanation is not None]
        response = ScoreResponse(
            rewards=[score.reward for score in scores],
            components=[score.components for score in scores],
            explanations=explanations,
        )
        stats = BatchStats(cache_hits=hits, cache_misses=len(pending), texts_extracted=len(slots))
        logger.debug(
            "scored %d items: %d texts extracted, %d cache hits, %d cache misses",
            len(items),
            stats.texts_extracted,
            stats.cache_hits,
            stats.cache_misses,
        )
        return ScoredBatch(response=response, stats=stats)

    def _lookup_references(
        self, items: Sequence[ScoreItem], keys: Sequence[bytes], slots: dict[str, int]
    ) -> tuple[dict[bytes, ReferenceEntry], dict[bytes, tuple[int, str | None]], int]:
        """Split the distinct references into cached entries and (slot, answer) to extract."""
        found: dict[bytes, ReferenceEntry] = {}
        pending: dict[bytes, tuple[int, str | None]] = {}
        hits = 0
        for item, key in zip(items, keys, strict=True):
            if key in found or key in pending:
                continue
            entry = self.cache.get(key)
            if entry is not None:
                found[key] = entry
                hits += 1
                continue
            rationale, tagged_answer = split_reference(
                item.reference, think_tag=self.think_tag, answer_tag=self.answer_tag
            )
            pending[key] = (slots.setdefault(rationale, len(slots)), tagged_answer)
        return found, pending, hits


def split_reference(reference: str, *, think_tag: str, answer_tag: str) -> tuple[str, str | None]:
    """Return the rationale and the <answer> text of a reference.

    ``parse_completion`` gives exactly the rule in the module docstring: the think blocks
    when there are any, else the whole text without its answer block.
    """
    parsed = parse_completion(reference, think_tag=think_tag, answer_tag=answer_tag)
    return parsed.think, parsed.answer


def _first_answer(explicit: str | None, tagged: str | None) -> str | None:
    return explicit if explicit is not None else tagged
