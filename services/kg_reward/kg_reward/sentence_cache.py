"""Per-sentence extraction with an LRU cache of sentence results.

Report sentences repeat a lot ("No pneumothorax.", "The heart is normal in size."), and the
entity, context and relation components of the default pipeline look only inside one sentence.
So the extractor runs the sections component on each whole text, then looks every sentence up
in a cache keyed by its (cleaned) text and token lengths. The sentences not found are copied,
token by token, into one Doc per batch, the other components run once on that Doc, and its
results are split back into sentences and cached. A text's graph is the concatenation of its
sentences' graphs, shifted to the sentence's character offset.

Sentences in skipped sections and section headers contribute nothing, because the extractor
drops entities in skipped sections and the entity component never starts an entity in a header.

NOTE: a lexicon or cue match that crosses a sentence end would be found in a whole text but
not here; none occurs in the development reports (tests compare both paths on samples).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, NamedTuple

import numpy

from kg_reward.spacy_import import import_spacy

# This module imports spaCy directly, so it hides torch first, as kg_reward.pipeline does.
import_spacy()

from spacy.attrs import IDX, LENGTH, SENT_START  # noqa: E402
from spacy.tokens import Doc  # noqa: E402

from kg_reward.pipeline.entities import normalize_surface  # noqa: E402
from kg_reward.pipeline.spans import doc_text, entity_rows, remember_text  # noqa: E402

if TYPE_CHECKING:
    from spacy.language import Language

PRESENCE_LABELS = {
    ("disorder", False): "disorder_notpresent",
    ("disorder", True): "disorder_present",
    ("device", False): "devices_notpresent",
    ("device", True): "devices_present",
}
PLAIN_LABELS = {
    "anatomy": "anatomy",
    "procedure": "procedures",
    "concept": "concept",
    "size": "size",
}

# An entity of a graph: (text, start char, end char, label, canonical, assertion).
EntityRow = tuple[str, int, int, str, str, str]
GraphRows = tuple[tuple[EntityRow, ...], tuple[tuple[int, int, str], ...]]
# A cached sentence. Its entities are (start, end, graph label, canonical name, assertion)
# with offsets relative to the sentence start and "" as the name of a measurement, whose
# surface text is normalized instead. Its relations are (head, tail, type) with indices into
# the sentence's entities.
_SentenceEntity = tuple[int, int, str, str, str]
_SentenceRows = tuple[tuple[_SentenceEntity, ...], tuple[tuple[int, int, str], ...]]
# A sentence's text and its token lengths (uint64 bytes), which fix its tokens.
_SentenceKey = tuple[str, bytes]


class _Sentence(NamedTuple):
    """A sentence to look up: its key, its character start and its tokens in the text's doc."""

    key: _SentenceKey
    start_char: int
    offsets: list[int]  # offset of every token of the doc
    lengths: list[int]  # length of every token of the doc
    first: int
    end: int


def graph_label(kind: str, assertion: str) -> str:
    """Return the graph label of an entity of the pipeline's ``kind`` with ``assertion``."""
    return PRESENCE_LABELS.get((kind, assertion != "absent")) or PLAIN_LABELS[kind]


@lru_cache(maxsize=4096)
def _normalized(surface: str) -> str:
    return normalize_surface(surface)


class SentenceExtractor:
    """Extract graph rows sentence by sentence, caching up to ``cache_size`` sentences."""

    def __init__(self, nlp: Language, skip_sections: frozenset[str], cache_size: int) -> None:
        self.vocab = nlp.vocab
        self.make_doc = nlp.make_doc
        self.sections = nlp.pipeline[0][1]
        self.components = [component for _name, component in nlp.pipeline[1:]]
        self.skip_sections = skip_sections
        self.cache_size = cache_size
        self._cache: OrderedDict[_SentenceKey, _SentenceRows] = OrderedDict()
        self._lock = threading.Lock()

    def rows(self, originals: Sequence[str], docs: Sequence[Doc]) -> list[GraphRows]:
        """Return the graph rows of each text; ``docs`` are the tokenized cleaned texts."""
        plans = [self._plan(self.sections(doc)) for doc in docs]
        found = self._lookup(sentence for plan in plans for sentence in plan)
        return [
            _assemble(original, plan, found) if original.strip() else ((), ())
            for original, plan in zip(originals, plans, strict=True)
        ]

    def _plan(self, doc: Doc) -> list[_Sentence]:
        """Return the sentences of ``doc`` whose entities can reach the graph."""
        length = len(doc)
        if not length:
            return []
        array = doc.to_array([SENT_START, IDX, LENGTH])
        starts = numpy.flatnonzero(array[:, 0] == 1).tolist()
        offsets, lengths = array[:, 1:].T.tolist()
        # Bytes hash once and compare fast, unlike a tuple of ints, and keys are hashed often.
        length_bytes = array[:, 2].tobytes()
        width = array.itemsize
        text = doc_text(doc)
        dropped = bytearray(length)
        for first, end, name, header_end in doc._.sections or ():
            if name in self.skip_sections:
                dropped[first:end] = b"\x01" * (end - first)
            elif header_end > first:
                dropped[first:header_end] = b"\x01" * (header_end - first)
        boundaries = starts if starts and starts[0] == 0 else [0, *starts]
        boundaries.append(length)
        plan = []
        for first, end in zip(boundaries, boundaries[1:], strict=False):
            if dropped[first]:
                continue
            start_char = offsets[first]
            end_char = offsets[end - 1] + lengths[end - 1]
            key = (text[start_char:end_char], length_bytes[first * width : end * width])
            plan.append(_Sentence(key, start_char, offsets, lengths, first, end))
        return plan

    def _lookup(self, sentences: Iterable[_Sentence]) -> dict[_SentenceKey, _SentenceRows]:
        found: dict[_SentenceKey, _SentenceRows] = {}
        missing: dict[_SentenceKey, _Sentence] = {}
        cache = self._cache
        with self._lock:
            for sentence in sentences:
                key = sentence.key
                if key in found or key in missing:
                    continue
                rows = cache.get(key)
                if rows is None:
                    missing[key] = sentence
                else:
                    cache.move_to_end(key)
                    found[key] = rows
        if missing:
            computed = self._compute(list(missing.values()))
            found.update(computed)
            self._store(computed)
        return found

    def _store(self, computed: dict[_SentenceKey, _SentenceRows]) -> None:
        if not self.cache_size:
            return
        with self._lock:
            self._cache.update(computed)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)

    def _compute(self, sentences: list[_Sentence]) -> dict[_SentenceKey, _SentenceRows]:
        """Run the pipeline after the sections component on the sentences, joined in one Doc."""
        doc, firsts = self._join(sentences)
        for component in self.components:
            doc = component(doc)
        return _split(doc, sentences, firsts)

    def _join(self, sentences: list[_Sentence]) -> tuple[Doc, list[int]]:
        """Return a Doc of the sentences, one space apart, and each one's first token.

        Tokenizing the joined text usually gives the sentences' own tokens. Where it does not
        (whitespace runs and sentence starts inside a word can tokenize differently), the token
        offsets differ and the Doc is built from the original tokens instead.
        """
        firsts: list[int] = []
        offsets: list[int] = []
        lengths: list[int] = []
        parts: list[str] = []
        position = 0
        for sentence in sentences:
            text = sentence.key[0]
            base = sentence.offsets[sentence.first] - position
            firsts.append(len(offsets))
            offsets.extend(
                [offset - base for offset in sentence.offsets[sentence.first : sentence.end]]
            )
            lengths.extend(sentence.lengths[sentence.first : sentence.end])
            parts.append(text)
            position += len(text) + 1
        joined = " ".join(parts) + " "
        doc = self.make_doc(joined)
        expected = numpy.array([offsets, lengths], dtype="uint64").T
        if len(doc) != len(offsets) or not numpy.array_equal(doc.to_array([IDX, LENGTH]), expected):
            doc = self._doc_from_tokens(joined, offsets, lengths)
        starts = numpy.full((len(doc), 1), -1, dtype="int32")
        starts[firsts, 0] = 1
        doc.from_array([SENT_START], starts.astype("uint64"))  # type: ignore[arg-type]
        doc._.sections = []
        remember_text(doc, joined)
        return doc, firsts

    def _doc_from_tokens(self, text: str, offsets: list[int], lengths: list[int]) -> Doc:
        words = [
            text[offset : offset + size] for offset, size in zip(offsets, lengths, strict=True)
        ]
        ends = [offset + size for offset, size in zip(offsets, lengths, strict=True)]
        # A token is followed by a space unless the next token starts right after it.
        spaces = [
            end < following for end, following in zip(ends, [*offsets[1:], len(text)], strict=True)
        ]
        return Doc(self.vocab, words=words, spaces=spaces)


def _split(
    doc: Doc, sentences: list[_Sentence], firsts: list[int]
) -> dict[_SentenceKey, _SentenceRows]:
    """Cut the entities and relations of a joined Doc into per-sentence rows."""
    offsets, lengths = doc.to_array([IDX, LENGTH]).T.tolist()
    assertions = doc._.assertions or {}
    rows = entity_rows(doc)
    by_head: dict[int, list[tuple[int, int, str]]] = {}
    for head, tail, kind in doc._.relations or ():
        by_head.setdefault(head, []).append((head, tail, kind))

    computed: dict[_SentenceKey, _SentenceRows] = {}
    position = 0
    bounds = [*firsts[1:], len(doc)]
    for sentence, first, end in zip(sentences, firsts, bounds, strict=True):
        base = offsets[first]
        begin = position
        entities = []
        while position < len(rows) and rows[position].start < end:
            start, stop, kind, canonical = rows[position]
            assertion = assertions.get((start, stop)) or "present"
            entities.append(
                (
                    offsets[start] - base,
                    offsets[stop - 1] + lengths[stop - 1] - base,
                    graph_label(kind, assertion),
                    canonical,
                    assertion,
                )
            )
            position += 1
        relations = tuple(
            (head - begin, tail - begin, kind)
            for head in range(begin, position)
            for _head, tail, kind in by_head.get(head, ())
            if begin <= tail < position
        )
        computed[sentence.key] = (tuple(entities), relations)
    return computed


def _assemble(
    original: str, plan: list[_Sentence], found: dict[_SentenceKey, _SentenceRows]
) -> GraphRows:
    """Join the sentence rows of one text, with surfaces sliced from the original text."""
    entities: list[EntityRow] = []
    relations: list[tuple[int, int, str]] = []
    for sentence in plan:
        sentence_entities, sentence_relations = found[sentence.key]
        if not sentence_entities:
            continue
        offset = sentence.start_char
        count = len(entities)
        for start, end, label, canonical, assertion in sentence_entities:
            surface = original[start + offset : end + offset]
            entities.append(
                (
                    surface,
                    start + offset,
                    end + offset,
                    label,
                    canonical or _normalized(surface),
                    assertion,
                )
            )
        relations.extend(
            (head + count, tail + count, kind) for head, tail, kind in sentence_relations
        )
    return tuple(entities), tuple(relations)
