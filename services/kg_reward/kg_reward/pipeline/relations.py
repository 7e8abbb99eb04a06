"""Rule-based relations between the entities of one sentence, in ReXKG's directions.

Cue phrases come from a data file, one JSON object per line ``{"phrase", "kind"}``. The kinds:

* ``suggestive_of``: a phrase that links a finding to what it implies;
* ``located_at``: a preposition that links a finding to a place;
* ``bridge``: words that may sit between a finding and a located_at preposition ("is seen");
* ``copula``: words between a head and a modifier that follows it ("is", "measuring");
* ``link``: words that coordinate terms (",", "and", "with");
* ``modifier_link``: words between a modifier and its head ("and", "to");
* ``coordination``: words that join peer terms (",", "and", "or", but not "with");
* ``alternative``: words that join alternative readings of one finding ("or", "versus");
* ``shared_place``: a word after a preposition that makes the place shared ("both").

Whitespace tokens (line breaks, tabs, runs of spaces) count as absent in every rule.

Rules, on the entity labels of the entity component:

* ``modify`` (modifier -> head): a ``size`` or ``concept`` entity modifies the next head entity
  to its right when only modifier links and other modifiers lie between them ("small left pleural
  effusion": small -> effusion), unless a coordination word comes right before that head
  ("heart size normal and lungs are clear"); it modifies the head to its left when only copula
  words lie between them ("heart size is normal", "nodule measuring 5 mm"); an anatomy term
  modifies the anatomy term that follows it directly ("left" -> "lung");
* ``located_at`` (finding or device -> anatomy): an anatomy term directly before a finding
  ("right lower lobe pneumonia"); an anatomy term that is the subject of a predicate finding
  ("the heart is mildly enlarged"); or a finding followed, across bridge words, by a located_at
  preposition and then, across determiners and modifiers, an anatomy term ("opacity in the left
  lower lobe"); anatomy terms coordinated after the first are places too. Findings before the
  nearest one share its place when alternative words join them ("scarring versus atelectasis
  in the lingula"), or when coordination words join them and a shared_place word follows the
  preposition ("effusion and atelectasis in both lower lobes"). Otherwise only the nearest
  finding gets the place ("pneumomediastinum and subcutaneous emphysema in the neck",
  "pacemaker with leads in the right atrium");
* ``suggestive_of`` (finding -> implied finding): a suggestive_of phrase between two findings
  ("opacity may represent pneumonia", "opacities, likely atelectasis"); every finding
  coordinated after the phrase is a target.

Relations go to ``doc._.relations`` as ``(head entity index, tail entity index, type)`` with
indices into ``doc.ents``.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy
import srsly
from spacy.attrs import LOWER
from spacy.language import Language
from spacy.matcher import PhraseMatcher
from spacy.tokens import Doc

from kg_reward.pipeline.data import (
    RELATION_CUES_PATH,
    read_jsonl,
    resolve_annotations,
    strip_locations,
)
from kg_reward.pipeline.spans import (
    SentenceIndex,
    count_spaces_before,
    entity_rows,
    longest_first,
    matches_through_spaces,
    space_mask,
)

RELATION_CUE_KINDS = (
    "suggestive_of",
    "located_at",
    "bridge",
    "copula",
    "link",
    "modifier_link",
    "coordination",
    "alternative",
    "shared_place",
)
FINDING_LABELS = frozenset({"disorder", "device"})
MODIFIER_LABELS = frozenset({"size", "concept"})
HEAD_LABELS = frozenset({"disorder", "device", "anatomy", "procedure"})
_CUE_KEYS = frozenset({"phrase", "kind", "source", "_where"})
# Stands in for the LOWER hash of whitespace tokens, which no cue sequence contains.
SPACE_TOKEN = -1

Relations = set[tuple[int, int, str]]


class _Entity(NamedTuple):
    ent_index: int
    start: int
    end: int
    label: str
    canonical: str


def register_extensions() -> None:
    if not Doc.has_extension("relations"):
        Doc.set_extension("relations", default=None)


class RelationExtractor:
    """Add ``modify``, ``located_at`` and ``suggestive_of`` relations between entities."""

    def __init__(
        self,
        nlp: Language,
        name: str = "kg_relations",
        *,
        max_gap_tokens: int = 6,
    ) -> None:
        if max_gap_tokens < 1:
            raise ValueError(f"max_gap_tokens must be >= 1, got {max_gap_tokens}")
        self.name = name
        self.vocab = nlp.vocab
        self._make_doc = nlp.make_doc
        self.max_gap_tokens = max_gap_tokens
        self.cues: list[dict[str, Any]] = []
        self._matcher = PhraseMatcher(self.vocab, attr="LOWER")
        self._kind_of: dict[int, str] = {}
        self._sequences: dict[str, frozenset[tuple[int, ...]]] = {}
        self._longest_sequence = 1
        register_extensions()

    def initialize(
        self,
        get_examples: Any = None,
        *,
        nlp: Language | None = None,
        cues: Sequence[dict[str, Any]] | None = None,
    ) -> None:
        """Load relation cue phrases; ``None`` reads the packaged list."""
        self.set_cues(list(read_jsonl(RELATION_CUES_PATH)) if cues is None else cues)

    def set_cues(self, cues: Iterable[dict[str, Any]]) -> None:
        self._matcher = PhraseMatcher(self.vocab, attr="LOWER")
        self._kind_of = {}
        kept: list[dict[str, Any]] = []
        seen: set[tuple[str, str]] = set()
        sequences: dict[str, set[tuple[int, ...]]] = {kind: set() for kind in RELATION_CUE_KINDS}
        grouped: dict[str, list[Doc]] = {}
        for cue in cues:
            _check_cue(cue)
            phrase, kind = cue["phrase"].lower(), cue["kind"]
            if (phrase, kind) in seen:
                continue
            seen.add((phrase, kind))
            kept.append(cue)
            phrase_doc = self._make_doc(phrase)
            if kind in ("suggestive_of", "located_at"):
                key = f"rel|{kind}"
                self._kind_of[self.vocab.strings.add(key)] = kind
                grouped.setdefault(key, []).append(phrase_doc)
            # Gap words are compared as sequences of LOWER hashes, without Token objects.
            sequences[kind].add(tuple(token.lower for token in phrase_doc))
        for key, docs in grouped.items():
            self._matcher.add(key, docs)
        self._sequences = {kind: frozenset(values) for kind, values in sequences.items()}
        self._longest_sequence = max(
            (len(sequence) for values in sequences.values() for sequence in values), default=1
        )
        self.cues = strip_locations(kept)

    def __call__(self, doc: Doc) -> Doc:
        relations: Relations = set()
        rows = entity_rows(doc)
        if len(rows) > 1:
            entities = [_Entity(i, *row) for i, row in enumerate(rows)]
            spaces = space_mask(doc)
            spaces_before = count_spaces_before(spaces)
            cues = [
                (start, end, self._kind_of[match_id])
                for match_id, start, end in longest_first(
                    matches_through_spaces(self._matcher, doc, spaces), spaces_before
                )
            ]
            lowers = doc.to_array(LOWER).tolist()
            if spaces is not None:
                # Whitespace tokens (line breaks, tabs) are transparent to the gap rules.
                for position in numpy.flatnonzero(spaces).tolist():
                    lowers[position] = SPACE_TOKEN
            sentences = SentenceIndex(doc)
            cue_starts = [cue[0] for cue in cues]
            for group in _group_by_sentence(entities, sentences):
                # The rules use the cues that start in the group's sentence, because a cue in
                # a later sentence lies past every entity of the group and yields nothing.
                sentence_start, sentence_end = sentences.bounds(group[0].start)
                first = bisect.bisect_left(cue_starts, sentence_start)
                last = bisect.bisect_left(cue_starts, sentence_end, first)
                _SentenceRelations(
                    self, lowers, group, cues[first:last], relations, spaces_before=spaces_before
                ).run()
        doc._.relations = sorted(relations)
        return doc

    def sequences(self, kind: str) -> frozenset[tuple[int, ...]]:
        """Return the cue phrases of ``kind`` as tuples of LOWER hashes."""
        return self._sequences[kind]

    def gap_is(self, lowers: list[int], start: int, end: int, kind: str) -> bool:
        """Return True when tokens in [start, end) are all phrases of the given cue kind."""
        if "|" in kind:
            allowed = frozenset().union(*(self._sequences[part] for part in kind.split("|")))
        else:
            allowed = self._sequences[kind]
        position = start
        while position < end:
            for length in range(min(self._longest_sequence, end - position), 0, -1):
                if tuple(lowers[position : position + length]) in allowed:
                    position += length
                    break
            else:
                return False
        return True

    def to_disk(self, path: str | Path, *, exclude: Iterable[str] = ()) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        srsly.write_jsonl(path / "cues.jsonl", self.cues)

    def from_disk(self, path: str | Path, *, exclude: Iterable[str] = ()) -> RelationExtractor:
        self.set_cues(list(srsly.read_jsonl(Path(path) / "cues.jsonl")))
        return self


class _SentenceRelations:
    """The relation rules applied to the entities of one sentence."""

    def __init__(
        self,
        extractor: RelationExtractor,
        lowers: list[int],
        entities: list[_Entity],
        cues: list[tuple[int, int, str]],
        relations: Relations,
        *,
        spaces_before: list[int] | None,
    ) -> None:
        self.lowers = lowers
        self.entities = entities
        self.cues = cues
        self.relations = relations
        self.max_gap = extractor.max_gap_tokens
        self._gap_is = extractor.gap_is
        self.has_spaces = spaces_before is not None
        self.spaces_before = spaces_before
        self._shared_place = extractor.sequences("shared_place")

    def gap(self, start: int, end: int, kind: str) -> bool:
        if self.has_spaces and SPACE_TOKEN in self.lowers[start:end]:
            words = [lower for lower in self.lowers[start:end] if lower != SPACE_TOKEN]
            return self._gap_is(words, 0, len(words), kind)
        return self._gap_is(self.lowers, start, end, kind)

    def too_far(self, end: int, start: int) -> bool:
        """Return True when more than ``max_gap`` words (whitespace aside) lie in [end, start)."""
        words = start - end
        if self.spaces_before is not None:
            words -= self.spaces_before[start] - self.spaces_before[end]
        return words > self.max_gap

    def adjacent(self, end: int, start: int) -> bool:
        """Return True when only whitespace tokens, if any, lie between ``end`` and ``start``."""
        return end == start or (
            start > end and all(lower == SPACE_TOKEN for lower in self.lowers[end:start])
        )

    def run(self) -> None:
        # located_at runs first: a predicate modifier skips over the place of its finding.
        self.add_located_at()
        self.add_modify()
        self.add_suggestive_of()

    # modify -----------------------------------------------------------------------------
    def add_modify(self) -> None:
        entities = self.entities
        for position, entity in enumerate(entities):
            if entity.label in MODIFIER_LABELS:
                for head in self.modified_heads(position):
                    self.relations.add((entity.ent_index, head.ent_index, "modify"))
            elif entity.label == "anatomy" and position + 1 < len(entities):
                following = entities[position + 1]
                if following.label == "anatomy" and self.adjacent(entity.end, following.start):
                    self.relations.add((entity.ent_index, following.ent_index, "modify"))

    def modified_heads(self, position: int) -> list[_Entity]:
        """Return the head a modifier precedes, or else the subjects it is predicated of."""
        entities = self.entities
        cursor = entities[position].end
        for later in range(position + 1, len(entities)):
            candidate = entities[later]
            # A comma ends the phrase: in "volumes are low, with crowding" low is predicated.
            if not self.gap(cursor, candidate.start, "modifier_link"):
                break
            if candidate.label in HEAD_LABELS:
                # A coordinator right before a head starts a new phrase: in "heart size normal
                # and lungs are clear" normal describes the heart size, not the lungs.
                if not self.adjacent(cursor, candidate.start) and self.gap(
                    cursor, candidate.start, "coordination"
                ):
                    break
                return [self.last_of_run(later)]
            cursor = candidate.end
        cursor = entities[position].start
        for earlier in range(position - 1, -1, -1):
            candidate = entities[earlier]
            if not self.gap(candidate.end, cursor, "copula"):
                break
            if candidate.label in HEAD_LABELS:
                # "Granulomas in the left midlung are unchanged": the place is not the subject.
                subject = self.finding_placed_at(candidate)
                if subject is not None:
                    return [subject]
                # "Heart size and mediastinal contour are normal": both subjects.
                return [candidate, *self.coordinated_before(earlier, HEAD_LABELS)]
            cursor = candidate.start
        return []

    def finding_placed_at(self, anatomy: _Entity) -> _Entity | None:
        """Return the finding that this sentence locates at ``anatomy`` after a preposition."""
        for entity in self.entities:
            if entity.end > anatomy.start:
                break
            if (entity.ent_index, anatomy.ent_index, "located_at") in self.relations and (
                not self.adjacent(entity.end, anatomy.start)
            ):
                return entity
        return None

    def last_of_run(self, position: int) -> _Entity:
        """Return the last of adjacent heads: "left pleural effusion" -> effusion."""
        entities = self.entities
        while position + 1 < len(entities):
            following = entities[position + 1]
            if (
                not self.adjacent(entities[position].end, following.start)
                or following.label not in HEAD_LABELS
            ):
                break
            position += 1
        return entities[position]

    # located_at -------------------------------------------------------------------------
    def add_located_at(self) -> None:
        for position, finding in enumerate(self.entities):
            if finding.label not in FINDING_LABELS:
                continue
            for anatomy in self.anatomy_before(position):
                self.relations.add((finding.ent_index, anatomy.ent_index, "located_at"))
            subject = self.subject_anatomy(position)
            if subject is not None:
                self.relations.add((finding.ent_index, subject.ent_index, "located_at"))
            for anatomy in self.anatomy_adjacent_after(position):
                self.relations.add((finding.ent_index, anatomy.ent_index, "located_at"))
            after = self.preposition_after(position)
            places = [] if after is None else self.anatomy_run(position, after)
            if not places or after is None:
                continue
            # "pacemaker with leads in the right atrium": only the leads are in the atrium.
            link = "coordination" if self.starts_with_shared_place(after) else "alternative"
            for source in [finding, *self.coordinated_before(position, FINDING_LABELS, link=link)]:
                for anatomy in places:
                    self.relations.add((source.ent_index, anatomy.ent_index, "located_at"))

    def anatomy_before(self, position: int) -> list[_Entity]:
        """Return anatomy terms directly before a finding, possibly with modifiers in between."""
        found = []
        cursor = self.entities[position].start
        for earlier in range(position - 1, -1, -1):
            candidate = self.entities[earlier]
            if not self.gap(candidate.end, cursor, "modifier_link"):
                break
            if candidate.label == "anatomy":
                found.append(candidate)
            elif candidate.label not in MODIFIER_LABELS:
                break
            cursor = candidate.start
        return found

    def subject_anatomy(self, position: int) -> _Entity | None:
        """Return the anatomy term a predicate finding describes: "the heart is enlarged"."""
        cursor = self.entities[position].start
        crossed_copula = False
        for earlier in range(position - 1, -1, -1):
            candidate = self.entities[earlier]
            if self.gap(candidate.end, cursor, "link"):
                pass
            elif self.gap(candidate.end, cursor, "copula"):
                crossed_copula = True
            else:
                return None
            if candidate.label == "anatomy":
                return candidate if crossed_copula else None
            if candidate.label not in MODIFIER_LABELS:
                return None
            cursor = candidate.start
        return None

    def anatomy_adjacent_after(self, position: int) -> list[_Entity]:
        """Return the anatomy term right after an adjective finding: "hyperinflated lungs"."""
        if position + 1 >= len(self.entities):
            return []
        following = self.entities[position + 1]
        if following.label != "anatomy" or not self.adjacent(
            self.entities[position].end, following.start
        ):
            return []
        return [self.last_of_run(position + 1)]

    def preposition_after(self, position: int) -> int | None:
        """Return the token after a located_at preposition that follows the finding, if any."""
        cursor = self.entities[position].end
        for cue_start, cue_end, kind in self.cues:
            if kind != "located_at" or cue_start < cursor:
                continue
            if self.too_far(cursor, cue_start) or not self.only_bridge_or_modifiers(
                position, cursor, cue_start
            ):
                return None
            return cue_end
        return None

    def starts_with_shared_place(self, cursor: int) -> bool:
        """Return True when the first word at ``cursor`` is a shared_place word ("both")."""
        while cursor < len(self.lowers) and self.lowers[cursor] == SPACE_TOKEN:
            cursor += 1
        return cursor < len(self.lowers) and (self.lowers[cursor],) in self._shared_place

    def only_bridge_or_modifiers(self, position: int, start: int, end: int) -> bool:
        """Return True when tokens in [start, end) are bridge words or modifier entities."""
        cursor = start
        for candidate in self.entities[position + 1 :]:
            if candidate.start >= end:
                break
            if candidate.label not in MODIFIER_LABELS or not self.gap(
                cursor, candidate.start, "bridge"
            ):
                return False
            cursor = candidate.end
        return self.gap(cursor, end, "bridge")

    def anatomy_run(self, position: int, cursor: int) -> list[_Entity]:
        """Return anatomy terms right after a preposition, with coordinated ones ("A and B")."""
        found: list[_Entity] = []
        for candidate in self.entities[position + 1 :]:
            if candidate.end <= cursor:
                continue
            # Before the first place, further prepositions may follow a measurement
            # ("terminates 4 cm above the carina").
            gap_kind = "link" if found else "bridge|located_at"
            if self.too_far(cursor, candidate.start) or not self.gap(
                cursor, candidate.start, gap_kind
            ):
                break
            if candidate.label == "anatomy":
                found.append(candidate)
            elif candidate.label not in MODIFIER_LABELS:
                break
            cursor = candidate.end
        # An anatomy term right before another one modifies it ("left" in "left lung") and is
        # not a place of its own, so keep the last term of each adjacent run.
        return [
            entity
            for i, entity in enumerate(found)
            if i + 1 == len(found) or not self.adjacent(entity.end, found[i + 1].start)
        ]

    def coordinated_before(
        self,
        position: int,
        labels: frozenset[str],
        *,
        cross_anatomy: bool = False,
        link: str = "link",
    ) -> list[_Entity]:
        """Return entities with ``labels`` joined to the one at ``position`` by links ("A, B").

        An anatomy term in between ends the search unless ``cross_anatomy`` is set, because the
        findings before it have a place of their own ("hyperexpanded lungs with flattening of
        the diaphragms").
        """
        found = []
        cursor = self.entities[position].start
        for earlier in range(position - 1, -1, -1):
            candidate = self.entities[earlier]
            if not self.gap(candidate.end, cursor, link):
                break
            if self.adjacent(candidate.end, cursor) and candidate.label not in MODIFIER_LABELS:
                break  # adjacent terms form one phrase ("right pleural effusion")
            if candidate.label in labels:
                found.append(candidate)
            elif candidate.label == "anatomy" and not cross_anatomy:
                break
            elif candidate.label not in MODIFIER_LABELS and candidate.label != "anatomy":
                break
            cursor = candidate.start
        return found

    # suggestive_of ----------------------------------------------------------------------
    def add_suggestive_of(self) -> None:
        entities = self.entities
        first, last = entities[0].start, entities[-1].end
        for cue_start, cue_end, kind in self.cues:
            if kind != "suggestive_of" or cue_end <= first or cue_start >= last:
                continue
            sources = self.findings_ending_at(cue_start)
            targets = self.findings_starting_at(cue_end)
            for source in sources:
                for target in targets:
                    if source.canonical != target.canonical:
                        self.relations.add((source.ent_index, target.ent_index, "suggestive_of"))

    def findings_ending_at(self, cue_start: int) -> list[_Entity]:
        """Return the last finding before the cue and the findings coordinated with it."""
        for position in range(len(self.entities) - 1, -1, -1):
            candidate = self.entities[position]
            if candidate.end > cue_start or candidate.label not in FINDING_LABELS:
                continue
            if self.too_far(candidate.end, cue_start):
                return []
            coordinated = self.coordinated_before(position, FINDING_LABELS, cross_anatomy=True)
            return [candidate, *coordinated]
        return []

    def findings_starting_at(self, cursor: int) -> list[_Entity]:
        """Return the findings after the cue: the first across bridge words, then linked ones."""
        found: list[_Entity] = []
        for candidate in self.entities:
            if candidate.start < cursor:
                continue
            gap_kind = "link" if found else "bridge"
            if self.too_far(cursor, candidate.start) or not self.gap(
                cursor, candidate.start, gap_kind
            ):
                break
            if candidate.label in FINDING_LABELS:
                found.append(candidate)
            cursor = candidate.end
        return found


def _group_by_sentence(entities: list[_Entity], sentences: SentenceIndex) -> list[list[_Entity]]:
    groups: dict[int, list[_Entity]] = {}
    for entity in entities:
        groups.setdefault(sentences.number(entity.start), []).append(entity)
    return list(groups.values())


def _check_cue(cue: dict[str, Any]) -> None:
    where = cue.get("_where", "<relation cues>")
    unknown = set(cue) - _CUE_KEYS
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)} in a relation cue")
    if not isinstance(cue.get("phrase"), str) or not cue["phrase"].strip():
        raise ValueError(f"{where}: phrase must be a non-empty string")
    if cue.get("kind") not in RELATION_CUE_KINDS:
        raise ValueError(
            f"{where}: kind {cue.get('kind')!r} is not one of {', '.join(RELATION_CUE_KINDS)}"
        )


resolve_annotations(RelationExtractor.initialize)
