"""Sentence spans of report text, so that rationales quote whole report sentences."""

from __future__ import annotations

import re
from dataclasses import dataclass

# A sentence ends at ., ! or ? followed by whitespace, or at a line break.
_BOUNDARY = re.compile(r"(?<=[.!?])\s+|\n+")
# Numbered list markers such as "1." or "2)" that open impression items.
_LIST_MARKER = re.compile(r"^\s*\d{1,2}[.)]\s*")


@dataclass(frozen=True)
class Sentence:
    """A sentence of a text as the character span [start, end) of that text."""

    start: int
    end: int
    text: str


def split_sentences(text: str) -> list[Sentence]:
    """Split ``text`` into sentence spans, dropping list markers and empty pieces.

    A bare list marker such as "2." is not a sentence: it is stripped from the start of the
    sentence that follows it.
    """
    sentences: list[Sentence] = []
    position = 0
    for boundary in [*_BOUNDARY.finditer(text), None]:
        end = boundary.start() if boundary is not None else len(text)
        next_position = boundary.end() if boundary is not None else len(text)
        piece = text[position:end]
        if re.fullmatch(r"\s*\d{1,2}[.)]?\s*", piece):
            # Keep the marker out of the next sentence: skip past it.
            position = next_position
            continue
        marker = _LIST_MARKER.match(piece)
        start = position + (marker.end() if marker else 0)
        stripped_end = end - (len(text[start:end]) - len(text[start:end].rstrip()))
        if stripped_end > start:
            sentences.append(Sentence(start, stripped_end, text[start:stripped_end]))
        position = next_position
    return sentences


def sentence_index(sentences: list[Sentence], offset: int) -> int | None:
    """Return the index of the sentence that contains character ``offset``, or None."""
    for index, sentence in enumerate(sentences):
        if sentence.start <= offset < sentence.end:
            return index
    return None
