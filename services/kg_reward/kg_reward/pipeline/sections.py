"""Sentence and section splitting for radiology reports.

Boundaries come from regular expressions over the text, mapped to tokens afterwards, so the
component does no per-token Python work:

* a report header from the section table (``FINDINGS:``, ``IMPRESSION:`` ...) is a sentence of
  its own and opens a section that lasts until the next header;
* ``.``, ``!`` or ``?`` followed by whitespace ends a sentence, so decimals such as ``5.5 cm``
  stay inside one (no whitespace after the point), and so do a few abbreviations (``e.g.``);
* a numbered item (``1. ...``, ``2) ...``) at the start of the text, of a line or after a
  sentence end starts a sentence, and so does one inside a line when a capital letter follows
  the marker ("disease 2. Stable"); the marker's own ``.`` does not end a sentence;
* a blank line ends a sentence.

Sections are stored on ``doc._.sections`` as ``(first token, last token + 1, name, header end)``
tuples, where ``header end`` is the token after the header (equal to the first token for the
unnamed section before any header).
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy
import srsly
from spacy.attrs import IDX, SENT_START
from spacy.language import Language
from spacy.tokens import Doc, Span

from kg_reward.pipeline.data import read_section_titles, resolve_annotations
from kg_reward.pipeline.spans import doc_text

# Tokens that end with a point but do not end a sentence; the match is on the lowercased word.
_ABBREVIATIONS = frozenset({"e.g", "i.e", "vs", "approx", "dr", "cf", "fig"})
_ABBREVIATION_ENDS = frozenset(abbreviation[-1] for abbreviation in _ABBREVIATIONS)
_SENTENCE_END = re.compile(r"[.!?]+(?=\s)|\n[ \t]*\n")
_LIST_ITEM = re.compile(
    r"(?:^|(?<=\n)|(?<=[.!?:]\s))[ \t]*(\d{1,2})[.)][ \t]+(?=\S)"
    # Inline items ("disease 2. Stable") need a capital letter after the marker.
    r"|(?<=\s)(\d{1,2})[.)][ \t]+(?=[A-Z])"
)
# Every list item contains this.
_LIST_MARKER = re.compile(r"\d[.)][ \t]")
_WORD_BEFORE = re.compile(r"([A-Za-z.]+)$")

UNNAMED_SECTION = "report"


def register_extensions() -> None:
    if not Doc.has_extension("sections"):
        Doc.set_extension("sections", default=None)
    if not Span.has_extension("section"):
        Span.set_extension("section", getter=_span_section)


def _span_section(span: Span) -> str:
    sections = span.doc._.sections
    if not sections:
        return UNNAMED_SECTION
    starts = [section[0] for section in sections]
    position = bisect.bisect_right(starts, span.start) - 1
    return sections[position][2] if position >= 0 else UNNAMED_SECTION


class ReportSentencizer:
    """Set sentence starts and ``doc._.sections`` from report headers, punctuation and lists."""

    def __init__(self, nlp: Language, name: str = "kg_sections") -> None:
        self.name = name
        self.titles: list[dict[str, Any]] = []
        self._headers = _HeaderIndex([])
        register_extensions()

    def initialize(
        self,
        get_examples: Any = None,
        *,
        nlp: Language | None = None,
        titles: Sequence[dict[str, Any]] | None = None,
    ) -> None:
        """Load the section titles; ``None`` reads the packaged table."""
        self.set_titles(read_section_titles() if titles is None else titles)

    def set_titles(self, titles: Iterable[dict[str, Any]]) -> None:
        self.titles = [
            {"title": t["title"].strip(), "section": t["section"], "any_case": bool(t["any_case"])}
            for t in titles
            if t["title"].strip()
        ]
        self._headers = _HeaderIndex(self.titles)

    def __call__(self, doc: Doc) -> Doc:
        if len(doc) == 0:
            doc._.sections = []
            return doc
        text = doc_text(doc)
        token_starts = doc.to_array(IDX).tolist()
        starts = {0}
        sections: list[tuple[int, int, str]] = []

        for start_char, end_char, name in self._headers.find(text):
            first = _token_at(token_starts, start_char)
            after = _token_at(token_starts, end_char)
            starts.update((first, after))
            sections.append((first, after, name))

        list_points = set()
        # The list item expression has no literal start, so scanning for it is slow. Most texts
        # have no "1." or "2)" followed by a space at all.
        items = _LIST_ITEM.finditer(text) if _LIST_MARKER.search(text) else ()
        for match in items:
            number = 1 if match.group(1) is not None else 2
            starts.add(_token_at(token_starts, match.start(number)))
            list_points.add(match.end(number))
        for match in _SENTENCE_END.finditer(text):
            if match.start() in list_points or _is_abbreviation(text, match.start()):
                continue
            starts.add(_token_at(token_starts, match.end()))

        _set_sentence_starts(doc, starts)
        doc._.sections = _close_sections(sections, len(doc))
        return doc

    def to_disk(self, path: str | Path, *, exclude: Iterable[str] = ()) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        srsly.write_jsonl(path / "titles.jsonl", self.titles)

    def from_disk(self, path: str | Path, *, exclude: Iterable[str] = ()) -> ReportSentencizer:
        self.set_titles(srsly.read_jsonl(Path(path) / "titles.jsonl"))
        return self


class _HeaderIndex:
    """Find section titles in text without one regular expression of hundreds of branches.

    Most titles end with a colon, so each colon is a candidate: the words before it are looked
    up in a table, longest title first. Titles without a colon ("FINAL REPORT") are few and
    form one small expression. A title marked ``any_case`` matches in any letter case; the
    others only in capitals, as report templates write them.
    """

    def __init__(self, titles: Sequence[dict[str, Any]]) -> None:
        self._with_colon: dict[str, tuple[str, bool]] = {}
        bare: list[str] = []
        self._bare_section: dict[str, str] = {}
        for title in titles:
            words = _WORD_SPLIT.split(title["title"].upper().rstrip(":").strip())
            key = " ".join(words)
            if title["title"].rstrip().endswith(":"):
                self._with_colon[key] = (title["section"], title["any_case"])
            else:
                bare.append(re.escape(title["title"]).replace(r"\ ", r"\s+"))
                self._bare_section[key] = title["section"]
        self._max_words = max((len(k.split()) for k in self._with_colon), default=0)
        self._bare = re.compile(r"(?:^|(?<=\s))(" + "|".join(bare) + r")\b") if bare else None

    def find(self, text: str) -> list[tuple[int, int, str]]:
        """Return ``(start char, end char, section name)`` of each title, in text order."""
        found = []
        colon = text.find(":")
        while colon != -1:
            match = self._title_before(text, colon)
            if match is not None:
                found.append(match)
            colon = text.find(":", colon + 1)
        if self._bare is not None:
            for bare in self._bare.finditer(text):
                key = " ".join(_WORD_SPLIT.split(bare.group(1).upper()))
                found.append((bare.start(1), bare.end(1), self._bare_section[key]))
        found.sort()
        return found

    def _title_before(self, text: str, colon: int) -> tuple[int, int, str] | None:
        window = text[max(0, colon - 120) : colon]
        words = list(_WORD.finditer(window))
        offset = colon - len(window)
        best = None
        for count in range(1, min(self._max_words, len(words)) + 1):
            first = words[-count]
            candidate = window[first.start() :]
            key = " ".join(_WORD_SPLIT.split(candidate.upper().strip()))
            entry = self._with_colon.get(key)
            if entry is None:
                continue
            section, any_case = entry
            if any_case or candidate == candidate.upper():
                best = (offset + first.start(), colon + 1, section)
        return best


_WORD = re.compile(r"[^\s.]+")
_WORD_SPLIT = re.compile(r"\s+")


def _token_at(token_starts: list[int], char: int) -> int:
    """Return the index of the first token that starts at or after ``char``."""
    return bisect.bisect_left(token_starts, char)


def _is_abbreviation(text: str, point: int) -> bool:
    if not point or text[point - 1].lower() not in _ABBREVIATION_ENDS:
        return False
    match = _WORD_BEFORE.search(text, max(0, point - 8), point)
    return match is not None and match.group(1).lower() in _ABBREVIATIONS


def _set_sentence_starts(doc: Doc, starts: set[int]) -> None:
    values = numpy.full((len(doc), 1), -1, dtype="int32")
    for index in starts:
        if index < len(doc):
            values[index, 0] = 1
    values[0, 0] = 1
    doc.from_array([SENT_START], values.astype("uint64"))  # type: ignore[arg-type]


def _close_sections(
    sections: list[tuple[int, int, str]], length: int
) -> list[tuple[int, int, str, int]]:
    closed: list[tuple[int, int, str, int]] = []
    if not sections or sections[0][0] > 0:
        first_header = sections[0][0] if sections else length
        closed.append((0, first_header, UNNAMED_SECTION, 0))
    for position, (first, after, name) in enumerate(sections):
        end = sections[position + 1][0] if position + 1 < len(sections) else length
        closed.append((first, max(end, after), name, after))
    return closed


resolve_annotations(ReportSentencizer.initialize)
