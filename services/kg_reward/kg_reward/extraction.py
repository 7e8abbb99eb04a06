"""Radiology text -> ReXKG knowledge graphs with the kg_reward spaCy pipeline.

``Extractor`` wraps the spaCy ``Language`` built by ``kg_reward.pipeline.build_pipeline`` (or
loaded from a directory) and turns each processed ``Doc`` into a ``kg_schema.KnowledgeGraph``:

* disorders become ``disorder_notpresent`` when absent and ``disorder_present`` otherwise
  (uncertain findings keep ``assertion="uncertain"``); devices map to ``devices_present`` /
  ``devices_notpresent`` the same way; procedures map to ``procedures``; anatomy, concept and
  size keep their names;
* entities in the sections named in ``skip_sections`` (by default indication, history,
  comparison and technique, which describe why and how a study was done rather than what it
  shows) are left out, together with their relations.

Input rules: a text that is not a ``str`` raises ``InputError``; a text longer than
``MAX_TEXT_CHARS`` characters raises ``TextTooLongError``; an empty or whitespace-only text gives
an empty graph. Before the pipeline runs, control characters (except tab and newlines),
invisible format characters such as zero-width spaces, and markup tags such as ``<think>`` are
replaced by spaces of the same length, so they separate words instead of gluing them to cues,
and entity offsets still index the original text. Non-English or random text goes through the
pipeline like any other text and usually yields no entities.
"""

from __future__ import annotations

import gc
import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from kg_reward.errors import InputError, TextTooLongError

# kg_reward.pipeline imports spaCy with torch hidden (kg_reward.spacy_import), so this module
# imports spaCy only through it.
from kg_reward.pipeline import PIPE_NAMES
from kg_reward.pipeline.entities import normalize_surface
from kg_reward.pipeline.spans import doc_text, entity_rows, remember_text, token_offsets
from kg_reward.sentence_cache import GraphRows, SentenceExtractor, graph_label
from kg_schema import Entity, KnowledgeGraph, Relation

if TYPE_CHECKING:
    from spacy.language import Language
    from spacy.tokens import Doc

logger = logging.getLogger(__name__)

# Sets attributes of pydantic models past their __setattr__, as model_construct does.
_set_attribute = object.__setattr__

MAX_TEXT_CHARS = 100_000
DEFAULT_SKIP_SECTIONS = frozenset({"indication", "history", "comparison", "technique"})
# C0 and C1 control characters except tab, newline and carriage return, plus the invisible
# format characters that occur in copied text (soft hyphen, zero-width and direction marks,
# byte-order mark). Each is one code point, so replacing it by one space keeps offsets.
_CONTROL = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f"
    "\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb]"
)
_MARKUP_TAG = re.compile(r"</?[A-Za-z][\w-]*\s*/?>?")

# A cached graph: entity tuples (text, start, end, label, canonical, assertion) and relation
# tuples (head, tail, type). Tuples keep cached results immutable; models are built per call.
_EntityRow = tuple[str, int, int, str, str, str]
_GraphRows = GraphRows
_ENTITY_FIELDS = frozenset(Entity.model_fields)
_RELATION_FIELDS = frozenset(Relation.model_fields)
_GRAPH_FIELDS = frozenset(KnowledgeGraph.model_fields)


class Extractor:
    """Extract knowledge graphs from radiology text.

    ``cache_size`` texts keep their graphs in an LRU cache, because GRPO scores every
    completion of a group against the same reference text; 0 turns the cache off.
    With the default pipeline, texts are also processed sentence by sentence and
    ``sentence_cache_size`` sentences keep their results (``kg_reward.sentence_cache``), which
    gives the same graphs faster; 0 runs every component on every whole text instead.
    """

    def __init__(
        self,
        nlp: Language,
        *,
        skip_sections: Iterable[str] = DEFAULT_SKIP_SECTIONS,
        cache_size: int = 4096,
        sentence_cache_size: int = 16384,
    ) -> None:
        if cache_size < 0:
            raise ValueError(f"cache_size must be >= 0, got {cache_size}")
        if sentence_cache_size < 0:
            raise ValueError(f"sentence_cache_size must be >= 0, got {sentence_cache_size}")
        self.nlp = nlp
        self.skip_sections = frozenset(skip_sections)
        self.cache_size = cache_size
        # The sentence path relies on the default components, which look only inside one
        # sentence; a pipeline with other components runs whole texts.
        self._sentences = (
            SentenceExtractor(nlp, self.skip_sections, sentence_cache_size)
            if sentence_cache_size and tuple(nlp.pipe_names) == PIPE_NAMES
            else None
        )
        self._cache: OrderedDict[str, _GraphRows] = OrderedDict()
        # Web servers call extract from several threads; OrderedDict updates are not atomic.
        self._cache_lock = threading.Lock()

    def extract(
        self,
        texts: Iterable[str],
        ids: Sequence[str] | None = None,
        batch_size: int = 64,
    ) -> list[KnowledgeGraph]:
        """Return one graph per text, in order; the whole batch is checked before any work."""
        texts = list(texts)
        if ids is not None and len(ids) != len(texts):
            raise InputError(
                f"ids has {len(ids)} entries but texts has {len(texts)}; "
                "pass one id per text or no ids"
            )
        if batch_size < 1:
            raise InputError(f"batch_size must be >= 1, got {batch_size}")
        for position, text in enumerate(texts):
            check_text(text, position)

        with _cyclic_gc_paused():
            rows: list[_GraphRows | None] = [self._cache_get(text) for text in texts]
            missing = [position for position, row in enumerate(rows) if row is None]
            unique = list(dict.fromkeys(texts[position] for position in missing))
            if unique:
                computed = dict(zip(unique, self._compute_rows(unique, batch_size), strict=True))
                for text, graph_rows in computed.items():
                    self._cache_put(text, graph_rows)
                for position in missing:
                    rows[position] = computed[texts[position]]

            return [
                _build_graph(graph_rows, None if ids is None else ids[position])
                for position, graph_rows in enumerate(rows)
                if graph_rows is not None
            ]

    def extract_one(self, text: str, id: str | None = None) -> KnowledgeGraph:
        """Return the graph of one text."""
        return self.extract([text], None if id is None else [id])[0]

    def to_disk(self, path: str | Path) -> None:
        """Save the spaCy pipeline as a directory that ``kg_reward.load(path)`` reads."""
        self.nlp.to_disk(path)

    def graph_of(self, doc: Doc, id: str | None = None) -> KnowledgeGraph:
        """Return the graph of a Doc that this extractor's pipeline has processed."""
        return _build_graph(self._rows_of(doc, doc_text(doc)), id)

    def _compute_rows(self, texts: list[str], batch_size: int) -> list[_GraphRows]:
        if self._sentences is None:
            docs = self.nlp.pipe((self._make_doc(text) for text in texts), batch_size=batch_size)
            return [self._rows_of(doc, text) for text, doc in zip(texts, docs, strict=True)]
        rows: list[_GraphRows] = []
        for first in range(0, len(texts), batch_size):
            batch = texts[first : first + batch_size]
            rows.extend(self._sentences.rows(batch, [self._make_doc(text) for text in batch]))
        return rows

    def _make_doc(self, text: str) -> Doc:
        cleaned = clean_text(text)
        doc = self.nlp.make_doc(cleaned)
        remember_text(doc, cleaned)
        return doc

    def _rows_of(self, doc: Doc, original: str) -> _GraphRows:
        """Return the graph rows of ``doc``, with surface texts sliced from ``original``."""
        if not original.strip():
            return ((), ())
        skipped = self._skipped_token_ranges(doc)
        assertions = doc._.assertions or {}
        offsets, lengths = token_offsets(doc)
        # Position in doc.ents -> position in the graph, which leaves out skipped sections.
        graph_index: dict[int, int] = {}
        entities: list[_EntityRow] = []
        for position, (start, end, kind, canonical) in enumerate(entity_rows(doc)):
            if skipped and any(first <= start < last for first, last in skipped):
                continue
            assertion = assertions.get((start, end)) or "present"
            label = graph_label(kind, assertion)
            start_char = offsets[start]
            end_char = offsets[end - 1] + lengths[end - 1]
            surface = original[start_char:end_char]
            graph_index[position] = len(entities)
            entities.append(
                (
                    surface,
                    start_char,
                    end_char,
                    label,
                    canonical or normalize_surface(surface),
                    assertion,
                )
            )
        relations = tuple(
            (graph_index[head], graph_index[tail], kind)
            for head, tail, kind in doc._.relations or ()
            if head in graph_index and tail in graph_index
        )
        return tuple(entities), relations

    def _skipped_token_ranges(self, doc: Doc) -> list[tuple[int, int]]:
        sections = doc._.sections if doc.has_extension("sections") else None
        if not sections or not self.skip_sections:
            return []
        return [(first, end) for first, end, name, _ in sections if name in self.skip_sections]

    def _cache_get(self, text: str) -> _GraphRows | None:
        if not self.cache_size:
            return None
        with self._cache_lock:
            rows = self._cache.get(text)
            if rows is not None:
                self._cache.move_to_end(text)
        return rows

    def _cache_put(self, text: str, rows: _GraphRows) -> None:
        if not self.cache_size:
            return
        with self._cache_lock:
            self._cache[text] = rows
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)


@contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for one extraction, then restore its state.

    An extraction allocates tens of thousands of small objects (tuples, graph models) but makes
    no reference cycles, so reference counting frees all its garbage. The collections that
    those allocations trigger only rescan live objects. They took about a third of the
    extraction time on the development reports (CPython 3.11).
    """
    # NOTE: this is process-wide, so other threads' cyclic garbage waits until the call ends.
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def check_text(text: object, position: int = 0) -> None:
    """Raise ``InputError`` unless ``text`` is a str of at most ``MAX_TEXT_CHARS`` characters."""
    if not isinstance(text, str):
        raise InputError(
            f"text {position} is a {type(text).__name__}, not a str; pass report text as strings"
        )
    if len(text) > MAX_TEXT_CHARS:
        raise TextTooLongError(
            f"text {position} has {len(text)} characters, more than the limit of "
            f"{MAX_TEXT_CHARS}; split it into shorter texts"
        )


def clean_text(text: str) -> str:
    """Blank control characters and markup tags with spaces, keeping every offset."""
    cleaned = _CONTROL.sub(" ", text)
    if "<" in cleaned:
        cleaned = _MARKUP_TAG.sub(lambda match: " " * len(match.group()), cleaned)
    return cleaned


def _build_graph(rows: _GraphRows, id: str | None) -> KnowledgeGraph:
    """Build the graph models from rows without validating them again.

    The rows come from the pipeline, so they already satisfy the schema. Validation, and even
    ``model_construct``, cost more than the whole pipeline (about 2 and 3 µs per model with
    pydantic 2.14), so the models are built as ``model_construct`` builds them.
    """
    # NOTE: this sets the four attributes that pydantic 2's model_construct sets;
    # test_extraction_graph_build_matches_validation checks it against model_validate.
    new_entity = Entity.__new__
    entities = []
    for text, start, end, label, canonical, assertion in rows[0]:
        entity = new_entity(Entity)
        _set_attribute(
            entity,
            "__dict__",
            {
                "text": text,
                "start": start,
                "end": end,
                "label": label,
                "canonical": canonical,
                "assertion": assertion,
            },
        )
        _set_attribute(entity, "__pydantic_fields_set__", set(_ENTITY_FIELDS))
        _set_attribute(entity, "__pydantic_extra__", None)
        _set_attribute(entity, "__pydantic_private__", None)
        entities.append(entity)

    new_relation = Relation.__new__
    relations = []
    for head, tail, kind in rows[1]:
        relation = new_relation(Relation)
        _set_attribute(relation, "__dict__", {"head": head, "tail": tail, "type": kind})
        _set_attribute(relation, "__pydantic_fields_set__", set(_RELATION_FIELDS))
        _set_attribute(relation, "__pydantic_extra__", None)
        _set_attribute(relation, "__pydantic_private__", None)
        relations.append(relation)

    graph = KnowledgeGraph.__new__(KnowledgeGraph)
    _set_attribute(graph, "__dict__", {"id": id, "entities": entities, "relations": relations})
    _set_attribute(graph, "__pydantic_fields_set__", set(_GRAPH_FIELDS))
    _set_attribute(graph, "__pydantic_extra__", None)
    _set_attribute(graph, "__pydantic_private__", None)
    return graph


def load_extractor(path: str | Path | None = None) -> Extractor:
    """Build the default pipeline (``path=None``) or load one saved by ``Extractor.to_disk``."""
    import spacy

    from kg_reward.pipeline import build_pipeline

    if path is None:
        return Extractor(build_pipeline())
    path = Path(path)
    if not (path / "config.cfg").is_file():
        raise InputError(
            f"{path} is not a saved pipeline directory (no config.cfg); "
            "save one with Extractor.to_disk(path)"
        )
    logger.info("loading extraction pipeline from %s", path)
    return Extractor(spacy.load(path))
