"""Helpers the components share: overlap resolution of matches and sentence lookup."""

from __future__ import annotations

import bisect
from typing import Any, NamedTuple

import numpy
from spacy.attrs import ENT_ID, ENT_IOB, ENT_TYPE, IDX, IS_SPACE, LENGTH, SENT_START
from spacy.tokens import Doc

Match = tuple[int, int, int]


def longest_first(matches: list[Match], spaces_before: list[int] | None = None) -> list[Match]:
    """Keep non-overlapping matches, longest first and then earliest, in text order.

    ``spaces_before`` (from ``count_spaces_before``) makes the length of a match leave out
    its whitespace tokens, so a term split by a line break is as long as the same term on
    one line.
    """
    if len(matches) < 2:
        return list(matches)
    if spaces_before is None:
        ordered = sorted(matches, key=lambda m: (m[1] - m[2], m[1]))
    else:
        counts = spaces_before
        ordered = sorted(matches, key=lambda m: (m[1] - m[2] + counts[m[2]] - counts[m[1]], m[1]))
    taken = bytearray(max(end for _, _, end in matches))
    kept = []
    for match in ordered:
        _, start, end = match
        if 1 in taken[start:end]:
            continue
        taken[start:end] = b"\x01" * (end - start)
        kept.append(match)
    kept.sort(key=lambda m: m[1])
    return kept


class SentenceIndex:
    """Sentence boundaries of a doc, read once from the SENT_START array."""

    def __init__(self, doc: Doc) -> None:
        starts = []
        if doc.has_annotation("SENT_START"):
            starts = numpy.flatnonzero(doc.to_array(SENT_START) == 1).tolist()
        self.starts = starts or [0]
        if self.starts[0] != 0:
            self.starts.insert(0, 0)
        self.length = len(doc)

    def bounds(self, token: int) -> tuple[int, int]:
        """Return ``(first token, end token)`` of the sentence that contains ``token``."""
        position = bisect.bisect_right(self.starts, token) - 1
        end = self.starts[position + 1] if position + 1 < len(self.starts) else self.length
        return self.starts[position], end

    def number(self, token: int) -> int:
        """Return the position of the sentence that contains ``token``."""
        return bisect.bisect_right(self.starts, token) - 1


_ROWS_KEY = "kg_reward.entity_rows"


class EntityRow(NamedTuple):
    """One entity of ``doc.ents`` read from the token arrays: token span, label, canonical."""

    start: int
    end: int
    label: str
    canonical: str


def entity_rows(doc: Doc) -> list[EntityRow]:
    """Return the entities of ``doc.ents`` without building Token or Span objects.

    Reading ``doc.ents`` creates a Token for every token of the doc. The IOB array gives the
    same entities in a fraction of the time, and three components read them for every text.
    """
    if not len(doc):
        return []
    array = doc.to_array([ENT_IOB, ENT_TYPE, ENT_ID])
    # The rows are cached with the arrays they came from. A change to doc.ents changes the
    # arrays, so stale rows are rebuilt.
    fingerprint = array.tobytes()
    cached = doc.user_data.get(_ROWS_KEY)
    if cached is not None and cached[0] == fingerprint:
        return list(cached[1])
    iob = array[:, 0]
    begins = numpy.flatnonzero(iob == 3)  # B: begins an entity
    # An entity ends at the first token after its start that is not I (inside it).
    boundaries = numpy.append(numpy.flatnonzero(iob != 1), len(iob))
    ends = boundaries[numpy.searchsorted(boundaries, begins, side="right")]
    strings = doc.vocab.strings
    rows = [
        _row(strings, start, end, label, canonical)
        for start, end, label, canonical in zip(
            begins.tolist(),
            ends.tolist(),
            array[begins, 1].tolist(),
            array[begins, 2].tolist(),
            strict=True,
        )
    ]
    doc.user_data[_ROWS_KEY] = (fingerprint, tuple(rows))
    return rows


def _row(strings: Any, start: int, end: int, label: int, canonical: int) -> EntityRow:
    return EntityRow(start, end, strings[label], strings[canonical] if canonical else "")


_TEXT_KEY = "kg_reward.text"


def doc_text(doc: Doc) -> str:
    """Return ``doc.text``, computed once per doc and kept in ``doc.user_data``.

    ``Doc.text`` joins the text of every token on each access, which costs more than a regular
    expression over the whole text. The stored copy is checked against the doc's length in
    characters, so a doc whose tokens changed gets its text recomputed.
    """
    text = doc.user_data.get(_TEXT_KEY)
    if not len(doc):
        return ""
    last = doc[-1]
    if text is None or len(text) != last.idx + len(last.text_with_ws):
        text = doc.text
        doc.user_data[_TEXT_KEY] = text
    return text


def remember_text(doc: Doc, text: str) -> None:
    """Store the text a doc was made from, so that ``doc_text`` need not rebuild it."""
    doc.user_data[_TEXT_KEY] = text


def token_offsets(doc: Doc) -> tuple[list[int], list[int]]:
    """Return the character offset and the length of every token."""
    if not len(doc):
        return [], []
    offsets, lengths = doc.to_array([IDX, LENGTH]).T.tolist()
    return offsets, lengths


def space_mask(doc: Doc) -> numpy.ndarray | None:
    """Mark the whitespace tokens inside sentences, or return None when there are none.

    spaCy keeps every whitespace character except a single space after a word as a token of
    its own, so a line break, a tab or a run of spaces inside a term ("pleural\\neffusion")
    splits it. Whitespace at the start or end of a sentence splits nothing and is left
    unmarked, which keeps the common case (a line break after a sentence) on the fast path.
    """
    if not len(doc):
        return None
    mask = doc.to_array(IS_SPACE).astype(bool)
    if not mask.any():
        return None
    starts = numpy.zeros(len(doc), dtype=bool)
    if doc.has_annotation("SENT_START"):
        starts = doc.to_array(SENT_START) == 1
    starts[0] = True
    inner = numpy.zeros(len(doc), dtype=bool)
    for position in numpy.flatnonzero(mask).tolist():
        inner[position] = _between_words(mask, starts, position)
    return inner if inner.any() else None


def _between_words(mask: numpy.ndarray, starts: numpy.ndarray, position: int) -> bool:
    """Return True when a word of the same sentence lies on both sides of a whitespace token."""
    before = position
    while mask[before] and not starts[before]:
        before -= 1
    if mask[before]:
        return False  # only whitespace back to the sentence start
    after = position + 1
    while after < len(mask) and mask[after] and not starts[after]:
        after += 1
    return after < len(mask) and not starts[after]


def count_spaces_before(spaces: numpy.ndarray | None) -> list[int] | None:
    """Return, per token position (and the end), how many marked whitespace tokens precede it."""
    if spaces is None:
        return None
    return [0, *numpy.cumsum(spaces).tolist()]


def matches_through_spaces(matcher: Any, doc: Doc, spaces: numpy.ndarray | None) -> list[Match]:
    """Run a Matcher or PhraseMatcher as if the whitespace tokens of ``doc`` were not there.

    The matcher runs on a copy of the doc without its whitespace tokens, and each match is
    mapped back to the tokens of ``doc``, so a match may contain whitespace tokens. A match
    that would cross a sentence start of ``doc`` is dropped, because the components only look
    inside one sentence.
    """
    if spaces is None:
        return list(matcher(doc))
    kept = numpy.flatnonzero(~spaces)
    if not len(kept):
        return []
    text = doc_text(doc)
    offsets, lengths = doc.to_array([IDX, LENGTH]).T.tolist()
    words = [text[offsets[i] : offsets[i] + lengths[i]] for i in kept.tolist()]
    compact = Doc(doc.vocab, words=words, spaces=[True] * len(words))
    sentence_starts = doc.to_array(SENT_START) == 1 if doc.has_annotation("SENT_START") else None
    mapped = []
    for match_id, start, end in matcher(compact):
        first, last = int(kept[start]), int(kept[end - 1]) + 1
        if (
            last - first != end - start
            and sentence_starts is not None
            and sentence_starts[first + 1 : last].any()
        ):
            continue
        mapped.append((match_id, first, last))
    return mapped
