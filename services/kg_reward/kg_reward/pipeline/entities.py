"""Entity recognition from lexicon entries with spaCy's PhraseMatcher and Matcher.

A lexicon entry is one JSON object per line::

    {"label": "disorder", "pattern": "pleural effusion", "canonical": "pleural effusion"}

* ``label``: ``anatomy``, ``disorder``, ``device``, ``procedure``, ``concept`` or ``size``.
  Disorders and devices are stored without present/absent; the context component decides.
* ``pattern``: a phrase (matched on lowercase tokens) or a list of token patterns as in
  spaCy's Matcher; or, in place of ``pattern``, ``regex``: a regular expression matched on the
  text (case-insensitive) whose match is widened to whole tokens. Measurements use regexes,
  because one expression over the text is much faster than token patterns tried at every
  token.
* ``canonical``: the normalized name (defaults to the phrase; token patterns and regexes
  without one use the lowercased surface text with single spaces, which suits measurements).
* optional ``case_sensitive`` (match the exact case, for abbreviations such as ``ETT``),
  ``inflect`` (also match the plural of the last word; default true for phrases of anatomy,
  disorders, devices and procedures), ``assertion`` (``absent`` for a term that itself states
  an absence, such as "clear" for opacity), ``source`` (where the entry came from).

Phrases and token patterns match across line breaks, tabs and runs of spaces, because spaCy
makes each of those a token of its own and hard-wrapped reports split terms with them
("pleural" at the end of one line, "effusion" on the next). Such a match keeps the whitespace
in its span but never crosses a sentence start. Overlapping matches resolve to the longest,
then the earliest, so "left lower lobe" wins over "lobe" and "pleural effusion" over
"effusion". Entities land in ``doc.ents`` with the canonical
name as ``ent_id_`` (empty for entries without one: the extractor then normalizes the surface
text); entries with an ``assertion`` set ``span._.assertion``.
"""

from __future__ import annotations

import bisect
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy
import srsly
from spacy.attrs import ENT_ID, ENT_IOB, ENT_TYPE, IDX
from spacy.language import Language
from spacy.matcher import Matcher, PhraseMatcher
from spacy.tokens import Doc, Span

from kg_reward.pipeline.data import (
    read_irregular_plurals,
    read_lexicon_dir,
    strip_locations,
)
from kg_reward.pipeline.spans import (
    count_spaces_before,
    doc_text,
    longest_first,
    matches_through_spaces,
    space_mask,
)

logger = logging.getLogger(__name__)

ENTITY_LABELS = ("anatomy", "disorder", "device", "procedure", "concept", "size")
INFLECTED_LABELS = frozenset({"anatomy", "disorder", "device", "procedure"})
_ENTRY_KEYS = frozenset(
    {
        "label",
        "pattern",
        "regex",
        "canonical",
        "case_sensitive",
        "inflect",
        "assertion",
        "source",
        "_where",
    }
)
_ASSERTIONS = frozenset({"present", "absent", "uncertain"})
_SPACES = re.compile(r"\s+")
# The point between a digit and a letter, or a letter and a digit ("3x4mm" -> "3 x 4 mm").
_NUMBER_JOINT = re.compile(r"(?<=\d)(?=[a-z])|(?<=[a-z])(?=\d)")


@dataclass(frozen=True)
class EntryInfo:
    """Meaning of a match key: the label, the canonical name and a fixed assertion."""

    label: str
    label_hash: int
    canonical: str | None
    canonical_hash: int
    assertion: str | None


def register_extensions() -> None:
    """Register ``doc._.assertions`` ({(start token, end token): assertion}) and the view of
    it per entity, ``span._.assertion``."""
    if not Doc.has_extension("assertions"):
        Doc.set_extension("assertions", default=None)
    if not Span.has_extension("assertion"):
        Span.set_extension("assertion", getter=_get_assertion, setter=_set_assertion)


def _get_assertion(span: Span) -> str | None:
    assertions = span.doc._.assertions
    return None if assertions is None else assertions.get((span.start, span.end))


def _set_assertion(span: Span, value: str | None) -> None:
    if span.doc._.assertions is None:
        span.doc._.assertions = {}
    span.doc._.assertions[(span.start, span.end)] = value


def normalize_surface(text: str) -> str:
    """Return the canonical form of a surface string without a lexicon name.

    Lowercase, single spaces, and a space between a number and a unit or a dimension sign, so
    that "3x4mm" and "3 x 4 mm" share one name.
    """
    lowered = _SPACES.sub(" ", text.strip().lower())
    return _SPACES.sub(" ", _NUMBER_JOINT.sub(" ", lowered)).strip()


def pluralize(phrase: str, irregular: dict[str, str]) -> str:
    """Return ``phrase`` with its last word in the plural (English rules plus ``irregular``).

    A last word that already looks plural ("lungs") is returned unchanged.
    """
    head, _, last = phrase.rpartition(" ")
    if phrase in irregular:
        plural = irregular[phrase]
        return plural
    if last in irregular:
        plural = irregular[last]
    elif last.endswith("s") and not last.endswith(("ss", "sis", "us")):
        return phrase  # already plural ("lungs", "airways")
    elif last.endswith("sis"):
        plural = last[:-2] + "es"
    elif last.endswith(("s", "x", "z", "ch", "sh")):
        plural = last + "es"
    elif last.endswith("y") and len(last) > 1 and last[-2] not in "aeiou":
        plural = last[:-1] + "ies"
    else:
        plural = last + "s"
    return f"{head} {plural}" if head else plural


class LexiconEntityRecognizer:
    """Match lexicon phrases and token patterns and write the longest matches to ``doc.ents``."""

    def __init__(self, nlp: Language, name: str = "kg_entities") -> None:
        self.name = name
        self.vocab = nlp.vocab
        self._make_doc = nlp.make_doc
        self.entries: list[dict[str, Any]] = []
        self.irregular_plurals: dict[str, str] = {}
        self._reset_matchers()
        register_extensions()

    def _reset_matchers(self) -> None:
        self._lower = PhraseMatcher(self.vocab, attr="LOWER")
        self._orth = PhraseMatcher(self.vocab, attr="ORTH")
        self._tokens = Matcher(self.vocab)
        self._regexes: list[tuple[re.Pattern[str], int]] = []
        self._info: dict[int, EntryInfo] = {}
        self._seen: dict[tuple[str, str], tuple[str, str | None, str | None, str]] = {}

    def initialize(
        self,
        get_examples: Any = None,
        *,
        nlp: Language | None = None,
        entries: Sequence[dict[str, Any]] | None = None,
        irregular_plurals: dict[str, str] | None = None,
    ) -> None:
        """Load lexicon entries; ``None`` reads the packaged lexicon files."""
        self.irregular_plurals = (
            read_irregular_plurals() if irregular_plurals is None else dict(irregular_plurals)
        )
        self.entries = []
        self._reset_matchers()
        self.add_entries(read_lexicon_dir() if entries is None else entries)

    def add_entries(self, entries: Iterable[dict[str, Any]]) -> None:
        """Validate and add entries; a phrase defined twice with different meanings raises."""
        for entry in entries:
            _check_entry(entry)
            self._add_entry(entry)
            self.entries.append({k: v for k, v in entry.items() if k != "_where"})

    def _add_entry(self, entry: dict[str, Any]) -> None:
        label = entry["label"]
        pattern: Any = entry.get("pattern")
        canonical = entry.get("canonical")
        assertion = entry.get("assertion")
        where = entry.get("_where", "<entries>")

        if "regex" in entry:
            key = self._key(label, canonical, assertion)
            self._regexes.append(
                (re.compile(entry["regex"], re.IGNORECASE), self.vocab.strings[key])
            )
            return
        if isinstance(pattern, list):
            key = self._key(label, canonical, assertion)
            self._tokens.add(key, [pattern])
            return

        canonical = normalize_surface(canonical if canonical else pattern)
        key = self._key(label, canonical, assertion)
        case_sensitive = bool(entry.get("case_sensitive", False))
        inflect = entry.get("inflect", label in INFLECTED_LABELS)
        phrases = [pattern if case_sensitive else pattern.lower()]
        if inflect:
            phrases.append(pluralize(phrases[0], self.irregular_plurals))

        matcher = self._orth if case_sensitive else self._lower
        docs = []
        for phrase in phrases:
            if self._is_duplicate(phrase, case_sensitive, label, canonical, assertion, where):
                continue
            docs.append(self._make_doc(phrase))
        if docs:
            matcher.add(key, docs)

    def _is_duplicate(
        self,
        phrase: str,
        case_sensitive: bool,
        label: str,
        canonical: str,
        assertion: str | None,
        where: str,
    ) -> bool:
        seen_key = ("orth" if case_sensitive else "lower", phrase)
        meaning = (label, canonical, assertion, where)
        previous = self._seen.get(seen_key)
        if previous is None:
            self._seen[seen_key] = meaning
            return False
        if previous[:3] == meaning[:3]:
            return True
        raise ValueError(
            f"{where}: phrase {phrase!r} is already defined at {previous[3]} as "
            f"{previous[0]}/{previous[1]!r}; remove one of the two entries or give them the "
            "same label and canonical name"
        )

    def _key(self, label: str, canonical: str | None, assertion: str | None) -> str:
        key = f"{label}|{canonical or ''}|{assertion or ''}"
        label_hash = self.vocab.strings.add(label)
        canonical_hash = 0 if canonical is None else self.vocab.strings.add(canonical)
        self._info[self.vocab.strings.add(key)] = EntryInfo(
            label, label_hash, canonical, canonical_hash, assertion
        )
        return key

    def __call__(self, doc: Doc) -> Doc:
        # Terms match across line breaks, tabs and runs of spaces ("pleural\neffusion").
        spaces = space_mask(doc)
        matches = matches_through_spaces(self._lower, doc, spaces)
        matches += matches_through_spaces(self._orth, doc, spaces)
        if len(self._tokens):
            matches += matches_through_spaces(self._tokens, doc, spaces)
        if self._regexes:
            matches += _regex_matches(doc, self._regexes)

        # Entities are written as IOB, type and id columns in one call: creating a Span per
        # entity and calling set_ents costs several times more on short reports.
        length = len(doc)
        iob = [2] * length  # O: outside any entity
        types = [0] * length
        ids = [0] * length
        assertions: dict[tuple[int, int], str] = {}
        headers = _header_ranges(doc)

        for match_id, start, end in longest_first(matches, count_spaces_before(spaces)):
            if headers and any(first <= start < after for first, after in headers):
                continue
            info = self._info[match_id]
            iob[start] = 3  # B: begins an entity
            iob[start + 1 : end] = [1] * (end - start - 1)  # I: inside it
            types[start:end] = [info.label_hash] * (end - start)
            # Entries without a canonical name (measurements) get no id (0): adding every new
            # surface text to the StringStore would grow it for the life of a server.
            ids[start:end] = [info.canonical_hash] * (end - start)
            if info.assertion is not None:
                assertions[(start, end)] = info.assertion

        if length:
            columns = numpy.array([iob, types, ids], dtype="uint64").T.copy()
            doc.from_array([ENT_IOB, ENT_TYPE, ENT_ID], columns)  # type: ignore[arg-type]
        doc._.assertions = assertions
        return doc

    def to_disk(self, path: str | Path, *, exclude: Iterable[str] = ()) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        srsly.write_jsonl(path / "entries.jsonl", strip_locations(self.entries))
        srsly.write_json(path / "irregular_plurals.json", self.irregular_plurals)

    def from_disk(
        self, path: str | Path, *, exclude: Iterable[str] = ()
    ) -> LexiconEntityRecognizer:
        path = Path(path)
        self.initialize(
            entries=list(srsly.read_jsonl(path / "entries.jsonl")),
            irregular_plurals=srsly.read_json(path / "irregular_plurals.json"),
        )
        return self


def _check_entry(entry: dict[str, Any]) -> None:
    where = entry.get("_where", "<entries>")
    unknown = set(entry) - _ENTRY_KEYS
    if unknown:
        raise ValueError(
            f"{where}: unknown keys {sorted(unknown)}; "
            f"allowed are {sorted(_ENTRY_KEYS - {'_where'})}"
        )
    if entry.get("label") not in ENTRY_LABEL_SET:
        raise ValueError(
            f"{where}: label {entry.get('label')!r} is not one of {', '.join(ENTITY_LABELS)}"
        )
    if ("pattern" in entry) == ("regex" in entry):
        raise ValueError(f"{where}: give exactly one of pattern and regex")
    if "regex" in entry:
        try:
            re.compile(entry["regex"])
        except (re.error, TypeError) as error:
            raise ValueError(f"{where}: regex {entry['regex']!r} is invalid: {error}") from None
    pattern = entry.get("pattern", "-")
    if not (isinstance(pattern, str) and pattern.strip()) and not (
        isinstance(pattern, list) and pattern
    ):
        raise ValueError(f"{where}: pattern must be a non-empty phrase or a list of token patterns")
    canonical = entry.get("canonical")
    if canonical is not None and not (isinstance(canonical, str) and canonical.strip()):
        raise ValueError(f"{where}: canonical must be a non-empty string or left out")
    assertion = entry.get("assertion")
    if assertion is not None and assertion not in _ASSERTIONS:
        raise ValueError(f"{where}: assertion {assertion!r} is not one of {sorted(_ASSERTIONS)}")


ENTRY_LABEL_SET = frozenset(ENTITY_LABELS)


def _regex_matches(
    doc: Doc, regexes: list[tuple[re.Pattern[str], int]]
) -> list[tuple[int, int, int]]:
    """Return token matches of the regex entries, each widened to whole tokens."""
    text = doc_text(doc)
    token_starts: list[int] | None = None
    matches = []
    for regex, key in regexes:
        for found in regex.finditer(text):
            if found.end() == found.start():
                continue
            if token_starts is None:
                token_starts = doc.to_array(IDX).tolist()
            start = bisect.bisect_right(token_starts, found.start()) - 1
            end = bisect.bisect_left(token_starts, found.end())
            matches.append((key, max(start, 0), end))
    return matches


def _header_ranges(doc: Doc) -> list[tuple[int, int]]:
    """Token ranges of section headers set by the sections component, if it ran."""
    sections = doc._.sections if Doc.has_extension("sections") else None
    if not sections:
        return []
    return [
        (first, header_end) for first, _end, _name, header_end in sections if header_end > first
    ]
