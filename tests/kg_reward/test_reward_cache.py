"""The LRU cache of reference graphs."""

from __future__ import annotations

import pytest

from kg_reward.scoring import ReferenceCache, ReferenceEntry, reference_key
from kg_schema import KnowledgeGraph

ENTRY = ReferenceEntry(graph=KnowledgeGraph(), tagged_answer=None)


def test_reference_cache_counts_hits_and_misses():
    cache = ReferenceCache(max_size=4)
    key = reference_key("Small effusion.", "think", "answer")

    assert cache.get(key) is None
    cache.put(key, ENTRY)
    assert cache.get(key) is ENTRY
    assert (cache.hits, cache.misses) == (1, 1)


def test_reference_cache_evicts_least_recently_used():
    cache = ReferenceCache(max_size=2)
    first, second, third = (reference_key(text, "think", "answer") for text in "abc")
    cache.put(first, ENTRY)
    cache.put(second, ENTRY)
    cache.get(first)  # first is now the most recently used
    cache.put(third, ENTRY)

    assert len(cache) == 2
    assert cache.get(second) is None
    assert cache.get(first) is ENTRY


def test_reference_cache_size_zero_stores_nothing():
    cache = ReferenceCache(max_size=0)
    key = reference_key("a", "think", "answer")
    cache.put(key, ENTRY)

    assert len(cache) == 0
    assert cache.get(key) is None
    assert cache.misses == 1


def test_reference_cache_rejects_negative_size():
    with pytest.raises(ValueError, match="max_size must be >= 0"):
        ReferenceCache(max_size=-1)


def test_reference_key_depends_on_tags():
    assert reference_key("a", "think", "answer") != reference_key("a", "reasoning", "answer")


def test_reference_key_is_fixed_size():
    assert len(reference_key("x" * 100_000, "think", "answer")) == 16
