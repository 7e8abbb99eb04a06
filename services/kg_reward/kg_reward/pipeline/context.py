"""Assertion status of entities (present, absent, uncertain) in the manner of NegEx/ConText.

Cue phrases come from a data file, one JSON object per line::

    {"phrase": "no evidence of", "kind": "negation", "direction": "forward"}

``kind`` is ``negation``, ``uncertainty``, ``pseudo`` (looks like a cue but is none, such as
"no change"; its match hides the shorter cue inside it) or ``termination`` (ends a scope, such as
"but", "however", "which"). ``direction`` is ``forward`` (the cue governs what follows),
``backward`` (what precedes, as in "effusion has resolved") or ``both``.

Rules, applied per sentence to entities whose label is in ``target_labels``:

* a cue governs an entity when no termination cue and no other cue lies between them and at most
  ``max_scope_tokens`` tokens separate them, so "no A, B, or C" negates all three;
* the nearest governing cue wins, so "possible effusion, no pneumothorax" hedges the effusion and
  negates the pneumothorax; at equal distance uncertainty wins over negation;
* an assertion already set by the lexicon (for example "clear" as absent opacity) stays;
* entities with other labels and entities without a governing cue are ``present``.

Cue phrases match across line breaks, tabs and runs of spaces ("not" and "seen" on two lines).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import srsly
from spacy.language import Language
from spacy.matcher import PhraseMatcher
from spacy.tokens import Doc

from kg_reward.pipeline.data import CUES_PATH, read_jsonl, resolve_annotations, strip_locations
from kg_reward.pipeline.entities import register_extensions
from kg_reward.pipeline.spans import (
    SentenceIndex,
    count_spaces_before,
    entity_rows,
    longest_first,
    matches_through_spaces,
    space_mask,
)

CUE_KINDS = ("negation", "uncertainty", "pseudo", "termination")
DIRECTIONS = ("forward", "backward", "both")
_ASSERTION_OF_KIND = {"negation": "absent", "uncertainty": "uncertain"}
_CUE_KEYS = frozenset({"phrase", "kind", "direction", "source", "_where"})


class AssertionDetector:
    """Set ``span._.assertion`` on every entity from negation and uncertainty cues."""

    def __init__(
        self,
        nlp: Language,
        name: str = "kg_context",
        *,
        target_labels: Sequence[str] = ("disorder", "device", "procedure"),
        max_scope_tokens: int = 12,
    ) -> None:
        if max_scope_tokens < 1:
            raise ValueError(f"max_scope_tokens must be >= 1, got {max_scope_tokens}")
        self.name = name
        self.vocab = nlp.vocab
        self._make_doc = nlp.make_doc
        self.target_labels = frozenset(target_labels)
        self.max_scope_tokens = max_scope_tokens
        self.cues: list[dict[str, Any]] = []
        self._matcher = PhraseMatcher(self.vocab, attr="LOWER")
        self._kind_of: dict[int, tuple[str, str]] = {}
        register_extensions()

    def initialize(
        self,
        get_examples: Any = None,
        *,
        nlp: Language | None = None,
        cues: Sequence[dict[str, Any]] | None = None,
    ) -> None:
        """Load cue phrases; ``None`` reads the packaged cue list."""
        self.set_cues(list(read_jsonl(CUES_PATH)) if cues is None else cues)

    def set_cues(self, cues: Iterable[dict[str, Any]]) -> None:
        self.cues = []
        self._matcher = PhraseMatcher(self.vocab, attr="LOWER")
        self._kind_of = {}
        phrases: dict[str, dict[str, Any]] = {}
        grouped: dict[str, list[Doc]] = {}
        for cue in cues:
            _check_cue(cue, phrases)
            phrase = cue["phrase"].lower()
            if phrase in phrases:
                continue
            phrases[phrase] = cue
            key = f"cue|{cue['kind']}|{cue['direction']}"
            self._kind_of[self.vocab.strings.add(key)] = (cue["kind"], cue["direction"])
            grouped.setdefault(key, []).append(self._make_doc(phrase))
            self.cues.append(cue)
        for key, docs in grouped.items():
            self._matcher.add(key, docs)
        self.cues = strip_locations(self.cues)

    def __call__(self, doc: Doc) -> Doc:
        assertions = doc._.assertions
        if assertions is None:
            assertions = doc._.assertions = {}
        entities = entity_rows(doc)
        if not entities:
            return doc
        spaces = space_mask(doc)
        spaces_before = count_spaces_before(spaces)
        cues = [
            (start, end, *self._kind_of[match_id])
            for match_id, start, end in longest_first(
                matches_through_spaces(self._matcher, doc, spaces), spaces_before
            )
        ]
        sentences = SentenceIndex(doc) if cues else None
        cue_starts = [cue[0] for cue in cues]
        for start, end, label, _canonical in entities:
            if assertions.get((start, end)) is not None:
                continue
            if sentences is None or label not in self.target_labels:
                assertions[(start, end)] = "present"
                continue
            bounds = sentences.bounds(start)
            # Only cues that start in the entity's sentence can govern or block it, so the
            # other sentences' cues are skipped.
            first = bisect.bisect_left(cue_starts, bounds[0])
            last = bisect.bisect_left(cue_starts, bounds[1], first)
            assertions[(start, end)] = self._assertion_of(
                start, end, cues[first:last], bounds, spaces_before
            )
        return doc

    def _assertion_of(
        self,
        start: int,
        end: int,
        cues: list[tuple[int, int, str, str]],
        sentence: tuple[int, int],
        spaces_before: list[int] | None = None,
    ) -> str:
        best: tuple[int, int, str] | None = None
        for cue_start, cue_end, kind, direction in cues:
            # Termination cues only end scopes; they govern nothing themselves.
            if kind == "termination" or cue_start < sentence[0] or cue_end > sentence[1]:
                continue
            if cue_end <= start and direction != "backward":
                distance = start - cue_end
                between = (cue_end, start)
            elif cue_start >= end and direction != "forward":
                distance = cue_start - end
                between = (end, cue_start)
            elif cue_start < start < cue_end and direction != "backward":
                # The cue shares its last words with the entity's first ones, as the cue
                # "no acute" does with the entity "acute disease".
                distance = 0
                between = (start, start)
            else:
                continue
            if spaces_before is not None:
                # Line breaks and tabs inside the sentence do not count as words.
                distance -= spaces_before[between[1]] - spaces_before[between[0]]
            if distance > self.max_scope_tokens:
                continue
            if _blocked(cues, between, cue_start):
                continue
            rank = (distance, 0 if kind == "uncertainty" else 1)
            if best is None or rank < best[:2]:
                best = (*rank, kind)
        if best is None or best[2] not in _ASSERTION_OF_KIND:
            return "present"
        return _ASSERTION_OF_KIND[best[2]]

    def to_disk(self, path: str | Path, *, exclude: Iterable[str] = ()) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        srsly.write_jsonl(path / "cues.jsonl", self.cues)

    def from_disk(self, path: str | Path, *, exclude: Iterable[str] = ()) -> AssertionDetector:
        self.set_cues(list(srsly.read_jsonl(Path(path) / "cues.jsonl")))
        return self


def _blocked(cues: list[tuple[int, int, str, str]], between: tuple[int, int], own: int) -> bool:
    """Return True when another cue lies between a cue and the entity it would govern."""
    low, high = between
    for cue_start, cue_end, _kind, _direction in cues:
        if cue_start != own and cue_start >= low and cue_end <= high:
            return True
    return False


def _check_cue(cue: dict[str, Any], seen: dict[str, dict[str, Any]]) -> None:
    where = cue.get("_where", "<cues>")
    unknown = set(cue) - _CUE_KEYS
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)} in a cue entry")
    phrase = cue.get("phrase")
    if not isinstance(phrase, str) or not phrase.strip():
        raise ValueError(f"{where}: phrase must be a non-empty string")
    if cue.get("kind") not in CUE_KINDS:
        raise ValueError(f"{where}: kind {cue.get('kind')!r} is not one of {', '.join(CUE_KINDS)}")
    if cue.get("direction") not in DIRECTIONS:
        raise ValueError(
            f"{where}: direction {cue.get('direction')!r} is not one of {', '.join(DIRECTIONS)}"
        )
    previous = seen.get(phrase.lower())
    if previous is not None and (previous["kind"], previous["direction"]) != (
        cue["kind"],
        cue["direction"],
    ):
        raise ValueError(
            f"{where}: cue {phrase!r} is already defined at {previous.get('_where', '?')} as "
            f"{previous['kind']}/{previous['direction']}; keep one entry per phrase"
        )


resolve_annotations(AssertionDetector.initialize)
