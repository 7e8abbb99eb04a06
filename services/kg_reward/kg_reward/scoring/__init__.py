"""Reward scoring: answer matching, graph set similarity and the batch scorer."""

from kg_reward.scoring.answers import answer_items, normalize_answer, score_answer
from kg_reward.scoring.cache import ReferenceCache, ReferenceEntry, reference_key
from kg_reward.scoring.defaults import merge_options, merge_weights
from kg_reward.scoring.scorer import (
    BatchStats,
    GraphExtractor,
    ItemScore,
    RewardScorer,
    ScoredBatch,
    score_item,
    split_reference,
)
from kg_reward.scoring.similarity import compare_sets, set_similarity

__all__ = [
    "BatchStats",
    "GraphExtractor",
    "ItemScore",
    "ReferenceCache",
    "ReferenceEntry",
    "RewardScorer",
    "ScoredBatch",
    "answer_items",
    "compare_sets",
    "merge_options",
    "merge_weights",
    "normalize_answer",
    "reference_key",
    "score_answer",
    "score_item",
    "set_similarity",
    "split_reference",
]
