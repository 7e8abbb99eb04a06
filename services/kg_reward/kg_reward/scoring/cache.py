"""A bounded, thread-safe LRU cache of extracted reference graphs."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass

from kg_schema import KnowledgeGraph


@dataclass(frozen=True)
class ReferenceEntry:
    """The graph of a reference text and the text of its own <answer> block."""

    graph: KnowledgeGraph
    tagged_answer: str | None


def reference_key(reference: str, think_tag: str, answer_tag: str) -> bytes:
    """Return the cache key of a reference under the given tag names.

    A 16-byte BLAKE2b digest replaces the text so that the cache does not keep
    references of up to 100,000 characters alive as keys.
    """
    digest = hashlib.blake2b(digest_size=16)
    for part in (think_tag, answer_tag, reference):
        digest.update(part.encode("utf-8", "surrogatepass"))
        digest.update(b"\x00")
    return digest.digest()


class ReferenceCache:
    """Least-recently-used map from reference key to ReferenceEntry.

    ``max_size`` 0 disables storing; lookups still count as misses, so ``misses`` always
    equals the number of references that had to be extracted.
    """

    def __init__(self, max_size: int) -> None:
        if max_size < 0:
            raise ValueError(f"cache max_size must be >= 0, got {max_size}")
        self.max_size = max_size
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[bytes, ReferenceEntry] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: bytes) -> ReferenceEntry | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return entry

    def put(self, key: bytes, entry: ReferenceEntry) -> None:
        if self.max_size == 0:
            return
        with self._lock:
            self._entries[key] = entry
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_size:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
