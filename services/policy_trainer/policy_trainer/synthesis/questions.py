"""Question candidates drawn from one report and its knowledge graph.

Three kinds, as in the CheXPO-v2 data synthesis:

- ``basic``: "Is there X?" for every finding or device the graph asserts. A present
  mention gives ``yes``, a negated mention (``*_notpresent``) gives ``no``.
- ``region``: for a finding with a ``located_at`` relation, "Where is X?" (answer: the
  anatomy) and "Is there X in the R?" (``yes``). A negated located finding gives ``no``,
  and so does the anatomy of the other side ("left" <-> "right") when no mention of the
  finding in the report lies on that side or at an anatomy without a side.
- ``comparison``: a sentence with a change cue next to a present finding, in a report
  that compares with a prior study, gives "better, worse or unchanged?". The cues are
  data: ``policy_trainer/data/synthesis/comparison_cues.csv``.

Rules that keep answers true to the graph:

- Uncertain mentions (``assertion == "uncertain"``) give no question. Hedged findings have
  no yes/no answer, and a third answer class would unbalance the set.
- A ``no`` answer needs every mention of that canonical finding in the report to be
  negated. A question asked twice in one report with different answers is dropped.
- A present mention that follows a negation word in its clause ("no", "without") gives
  no question, because it is more likely a negation the pipeline missed.

Each candidate keeps the indices of the report sentences that mention its finding. Those
sentences, in report order, become the rationale.
"""

from __future__ import annotations

import csv
import functools
import random
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from kg_schema import Entity, KnowledgeGraph
from policy_trainer.synthesis.reports import Report
from policy_trainer.synthesis.sentences import Sentence, sentence_index

KINDS: tuple[str, ...] = ("basic", "region", "comparison")
FINDING_LABELS = frozenset(
    {"disorder_present", "disorder_notpresent", "devices_present", "devices_notpresent"}
)
# Modifier labels that become part of the question phrase ("small", "focal").
PHRASE_MODIFIER_LABELS = frozenset({"size", "concept"})
# Words that tie a change cue to an earlier study even when no comparison section exists.
_PRIOR_WORDS = re.compile(
    r"\b(prior|previous(ly)?|since|compared|comparison|interval|again|remain(s|ed)?)\b",
    re.IGNORECASE,
)
_SIDES = {"left": "right", "right": "left"}
_BOTH_SIDES = frozenset({"bilateral", "both", "bibasilar", "biapical"})
# Negation words for the missed-negation guard ("No acute cardiopulmonary abnormality"
# extracted as a present abnormality), and the words that end the negation's clause.
_NEGATION_CUE = re.compile(r"\b(no|without|negative for|free of|rather than)\b", re.IGNORECASE)
_CLAUSE_BREAK = re.compile(r"\b(but|however|although|though|except)\b|;", re.IGNORECASE)

BASIC_TEMPLATES = ("Is there {phrase}?", "Is there evidence of {phrase}?", "Is {phrase} seen?")
WHERE_TEMPLATES = ("Where is the {phrase}?", "In which region is the {phrase}?")
IN_REGION_TEMPLATES = ("Is there {phrase} in the {region}?",)
# Regions that name only a side read better as a place than as an anatomy.
SIDE_PHRASES = {"left": "on the left", "right": "on the right", "bilateral": "on both sides"}
# One-word anatomy adjectives by their English suffix: pulmonary, hilar, apical, osseous.
_ADJECTIVE_REGION = re.compile(r"[a-z]+(ary|ar|al|ic|ous)")
COMPARISON_TEMPLATES = (
    "Compared with the prior study, is the {phrase} better, worse or unchanged?",
)


@dataclass(frozen=True)
class ChangeCue:
    """A word that states the change of a finding against the prior study."""

    cue: str
    direction: str
    applies_to: str
    needs_prior_word: bool
    pattern: re.Pattern[str]


@dataclass
class Candidate:
    """A question about one finding, before its rationale is checked against the graph."""

    report_id: str
    kind: str
    question: str
    answer: str
    finding: str
    finding_label: str
    sentences: tuple[int, ...]
    region: str | None = None
    source: str = "template"
    expected_triplets: tuple[tuple[str, str, str], ...] = field(default=())
    # The question's meaning apart from its template wording, for example ("region",
    # "pleural effusion", "left lower lobe"). Candidates with equal keys are one question.
    key: tuple[str, ...] = field(default=())


def load_change_cues() -> list[ChangeCue]:
    """Load the change cues of comparison questions from the packaged CSV file."""
    source = resources.files("policy_trainer").joinpath("data/synthesis/comparison_cues.csv")
    rows = list(csv.DictReader(source.read_text(encoding="utf-8").splitlines()))
    return [
        ChangeCue(
            cue=row["cue"],
            direction=row["direction"],
            applies_to=row["applies_to"],
            needs_prior_word=row["needs_prior_word"] == "yes",
            pattern=re.compile(rf"\b{re.escape(row['cue'])}\b", re.IGNORECASE),
        )
        for row in rows
    ]


class QuestionBuilder:
    """Builds the question candidates of one report from its graph and sentence spans."""

    def __init__(self, kinds: Iterable[str], rng: random.Random) -> None:
        self.kinds = tuple(kinds)
        self.rng = rng
        self.cues = load_change_cues()
        self.skipped_uncertain = 0
        self.skipped_conflicting = 0
        self.skipped_negation_cue = 0

    def build(
        self, report: Report, graph: KnowledgeGraph, sentences: list[Sentence]
    ) -> list[Candidate]:
        """Return the candidates of one report, one per distinct question."""
        findings = [
            index for index, entity in enumerate(graph.entities)
            if entity.label in FINDING_LABELS
        ]
        uncertain = [i for i in findings if graph.entities[i].assertion == "uncertain"]
        self.skipped_uncertain += len(uncertain)
        findings = [i for i in findings if i not in uncertain]
        doubtful = [
            i for i in findings
            if not _is_negated(graph.entities[i])
            and _negation_cue_before(sentences, graph.entities[i])
        ]
        self.skipped_negation_cue += len(doubtful)
        findings = [i for i in findings if i not in doubtful]

        candidates: list[Candidate] = []
        if "basic" in self.kinds:
            candidates += self._basic(report, graph, sentences, findings)
        if "region" in self.kinds:
            candidates += self._region(report, graph, sentences, findings)
        if "comparison" in self.kinds:
            candidates += self._comparison(report, graph, sentences, findings)
        return self._drop_conflicts(candidates)

    # -- basic -----------------------------------------------------------------------

    def _basic(
        self, report: Report, graph: KnowledgeGraph, sentences: list[Sentence],
        findings: list[int],
    ) -> list[Candidate]:
        candidates = []
        for index in findings:
            entity = graph.entities[index]
            answer = "no" if _is_negated(entity) else "yes"
            if answer == "no" and _has_unnegated_mention(graph, entity):
                continue
            phrase = finding_phrase(graph, index)
            candidates.append(Candidate(
                report_id=report.report_id,
                kind="basic",
                question=self.rng.choice(BASIC_TEMPLATES).format(phrase=phrase),
                answer=answer,
                finding=entity.canonical,
                finding_label=entity.label,
                sentences=_mention_sentences(graph, sentences, entity),
                key=("basic", phrase),
            ))
        return candidates

    # -- region ----------------------------------------------------------------------

    def _region(
        self, report: Report, graph: KnowledgeGraph, sentences: list[Sentence],
        findings: list[int],
    ) -> list[Candidate]:
        candidates = []
        # "Where is X?" gathers every located present mention of X in the report.
        where: dict[str, Candidate] = {}
        for index in findings:
            entity = graph.entities[index]
            regions = located_regions(graph, index)
            position = sentence_index(sentences, entity.start)
            if not regions or position is None:
                continue
            phrase = finding_phrase(graph, index)
            common = {
                "report_id": report.report_id, "kind": "region", "finding": entity.canonical,
                "finding_label": entity.label, "sentences": (position,),
            }
            triplets = tuple((entity.canonical, "located_at", region) for region in regions)

            if _is_negated(entity):
                if _has_unnegated_mention(graph, entity):
                    continue
                for region in regions:
                    candidates.append(self._in_region(
                        common, phrase, region, "no",
                        ((entity.canonical, "located_at", region),),
                    ))
                continue

            self._add_where(where, common, phrase, regions, triplets)
            for region in regions:
                candidates.append(self._in_region(
                    common, phrase, region, "yes", ((entity.canonical, "located_at", region),),
                ))
            candidates += self._other_side(common, graph, entity, phrase, regions, triplets)
        return [*where.values(), *candidates]

    def _add_where(
        self, where: dict[str, Candidate], common: dict[str, Any], phrase: str,
        regions: list[str], triplets: tuple[tuple[str, str, str], ...],
    ) -> None:
        known = where.get(phrase)
        if known is None:
            where[phrase] = Candidate(
                **common, answer=", ".join(regions), expected_triplets=triplets,
                question=self.rng.choice(WHERE_TEMPLATES).format(phrase=phrase),
                key=("where", phrase),
            )
            return
        merged = list(dict.fromkeys([*known.answer.split(", "), *regions]))
        known.answer = ", ".join(merged)
        known.sentences = tuple(sorted({*known.sentences, *common["sentences"]}))
        known.expected_triplets = tuple(dict.fromkeys([*known.expected_triplets, *triplets]))

    def _other_side(
        self, common: dict[str, Any], graph: KnowledgeGraph, entity: Entity, phrase: str,
        regions: list[str], triplets: tuple[tuple[str, str, str], ...],
    ) -> list[Candidate]:
        """Ask about the mirrored anatomy when the report places this finding on one side."""
        sides_used = _finding_sides(graph, entity.canonical)
        if sides_used is None or len(sides_used) != 1:
            return []
        candidates = []
        for region in regions:
            mirrored = mirror_region(region)
            if mirrored is None:
                continue
            candidates.append(self._in_region(common, phrase, mirrored, "no", triplets))
        return candidates

    def _in_region(
        self, common: dict[str, Any], phrase: str, region: str, answer: str,
        triplets: tuple[tuple[str, str, str], ...],
    ) -> Candidate:
        """Build "Is there X in the R?" with the region in the form that reads naturally.

        A bare side reads "on the left" or "on both sides", and a one-word adjective such as
        "cardiopulmonary" goes before the finding ("acute cardiopulmonary abnormality").
        """
        finding = str(common["finding"])
        if region in SIDE_PHRASES:
            question = f"Is there {phrase} {SIDE_PHRASES[region]}?"
        elif _ADJECTIVE_REGION.fullmatch(region) and phrase.endswith(finding):
            question = f"Is there {phrase[: len(phrase) - len(finding)]}{region} {finding}?"
        else:
            question = self.rng.choice(IN_REGION_TEMPLATES).format(phrase=phrase, region=region)
        return Candidate(
            **common, answer=answer, region=region, question=question,
            expected_triplets=triplets, key=("region", phrase, region),
        )

    # -- comparison ------------------------------------------------------------------

    def _comparison(
        self, report: Report, graph: KnowledgeGraph, sentences: list[Sentence],
        findings: list[int],
    ) -> list[Candidate]:
        present = {i for i in findings if not _is_negated(graph.entities[i])}
        candidates = []
        for position, sentence in enumerate(sentences):
            names_prior = _PRIOR_WORDS.search(sentence.text) is not None
            if not (report.has_prior or names_prior):
                continue
            for cue in self.cues:
                if cue.needs_prior_word and not names_prior:
                    continue
                for match in cue.pattern.finditer(sentence.text):
                    target = _cue_target(graph, sentence, sentence.start + match.start())
                    if target is None or target not in present:
                        continue
                    entity = graph.entities[target]
                    if cue.applies_to == "disorder" and not entity.label.startswith("disorder"):
                        continue
                    candidates.append(Candidate(
                        report_id=report.report_id, kind="comparison",
                        question=self.rng.choice(COMPARISON_TEMPLATES).format(
                            phrase=finding_phrase(graph, target)
                        ),
                        answer=cue.direction, finding=entity.canonical,
                        finding_label=entity.label, sentences=(position,),
                        key=("comparison", finding_phrase(graph, target)),
                    ))
        return candidates

    # -- checks ----------------------------------------------------------------------

    def _drop_conflicts(self, candidates: list[Candidate]) -> list[Candidate]:
        """Keep one candidate per question key; drop keys that got different answers."""
        answers: dict[tuple[str, ...], set[str]] = {}
        for candidate in candidates:
            answers.setdefault(candidate.key, set()).add(candidate.answer)
        kept: dict[tuple[str, ...], Candidate] = {}
        for candidate in candidates:
            key = candidate.key
            if len(answers[key]) > 1:
                continue
            if key in kept:
                merged = sorted(set(kept[key].sentences) | set(candidate.sentences))
                kept[key].sentences = tuple(merged)
                continue
            kept[key] = candidate
        conflicting = sum(1 for values in answers.values() if len(values) > 1)
        self.skipped_conflicting += conflicting
        return list(kept.values())


def finding_phrase(graph: KnowledgeGraph, index: int) -> str:
    """Return the canonical finding preceded by its size and concept modifiers, in text order.

    Change words ("stable", "improved") are left out: they describe the comparison with
    the prior study, not the finding.
    """
    entity = graph.entities[index]
    modifiers = sorted(
        (graph.entities[relation.head] for relation in graph.relations
         if relation.type == "modify" and relation.tail == index
         and graph.entities[relation.head].label in PHRASE_MODIFIER_LABELS
         and not _is_change_word(graph.entities[relation.head].text)),
        key=lambda modifier: modifier.start,
    )
    words = [modifier.canonical for modifier in modifiers if modifier.start < entity.start]
    words.append(entity.canonical)
    return " ".join(dict.fromkeys(words))


def _cue_target(graph: KnowledgeGraph, sentence: Sentence, offset: int) -> int | None:
    """Return the entity a change cue at ``offset`` describes, or None when unclear.

    A cue that the graph contains as a modifier describes the entity it modifies. Otherwise
    it describes the nearest entity of its sentence; when that is an anatomy
    ("unchanged cardiomediastinal silhouette"), the cue is not about a finding.
    """
    for relation in graph.relations:
        head = graph.entities[relation.head]
        if relation.type == "modify" and head.start <= offset < head.end:
            return relation.tail
    nearby = [
        index for index, entity in enumerate(graph.entities)
        if sentence.start <= entity.start < sentence.end
        and (entity.label in FINDING_LABELS or entity.label == "anatomy")
        and not entity.start <= offset < entity.end
    ]
    if not nearby:
        return None
    nearest = min(nearby, key=lambda i: abs(graph.entities[i].start - offset))
    return nearest if graph.entities[nearest].label in FINDING_LABELS else None


@functools.cache
def _change_pattern() -> re.Pattern[str]:
    cues = sorted((cue.cue for cue in load_change_cues()), key=len, reverse=True)
    return re.compile(r"\b(" + "|".join(re.escape(cue) for cue in cues) + r")\b", re.IGNORECASE)


def _is_change_word(text: str) -> bool:
    return _change_pattern().search(text) is not None


def located_regions(graph: KnowledgeGraph, index: int) -> list[str]:
    """Return the canonical anatomies that ``located_at`` links entity ``index`` to."""
    regions = [
        graph.entities[relation.tail].canonical for relation in graph.relations
        if relation.type == "located_at" and relation.head == index
        and graph.entities[relation.tail].label == "anatomy"
    ]
    return list(dict.fromkeys(regions))


def mirror_region(region: str) -> str | None:
    """Return ``region`` with left and right swapped, or None when it names no side."""
    words = region.split()
    sides = [word for word in words if word in _SIDES]
    if len(sides) != 1:
        return None
    return " ".join(_SIDES.get(word, word) for word in words)


def _finding_sides(graph: KnowledgeGraph, canonical: str) -> set[str] | None:
    """Return the sides of all non-negated located mentions of ``canonical``.

    None means that some mention lies at an anatomy without a side, or on both sides
    (a "bilateral" anatomy or modifier), so no side can be ruled out.
    """
    sides: set[str] = set()
    for index, entity in enumerate(graph.entities):
        if entity.canonical != canonical or _is_negated(entity):
            continue
        modifiers = {
            graph.entities[relation.head].canonical.lower() for relation in graph.relations
            if relation.type == "modify" and relation.tail == index
        }
        if modifiers & _BOTH_SIDES:
            return None
        for region in located_regions(graph, index):
            words = set(region.split())
            named = words & set(_SIDES)
            if len(named) != 1 or words & _BOTH_SIDES:
                return None
            sides |= named
    return sides


def _negation_cue_before(sentences: list[Sentence], entity: Entity) -> bool:
    """Return whether a negation word precedes a present mention in its sentence's clause."""
    position = sentence_index(sentences, entity.start)
    if position is None:
        return False
    sentence = sentences[position]
    prefix = sentence.text[: entity.start - sentence.start]
    cues = list(_NEGATION_CUE.finditer(prefix))
    return bool(cues) and not _CLAUSE_BREAK.search(prefix[cues[-1].end():])


def _is_negated(entity: Entity) -> bool:
    return entity.label.endswith("_notpresent") or entity.assertion == "absent"


def _has_unnegated_mention(graph: KnowledgeGraph, negated: Entity) -> bool:
    family = negated.label.split("_")[0]
    return any(
        entity.canonical == negated.canonical and entity.label.startswith(family)
        and not _is_negated(entity)
        for entity in graph.entities
    )


def _mention_sentences(
    graph: KnowledgeGraph, sentences: list[Sentence], entity: Entity
) -> tuple[int, ...]:
    """Return the sentences that mention ``entity``'s canonical with the same label."""
    positions = {
        position for other in graph.entities
        if other.canonical == entity.canonical and other.label == entity.label
        and (other.assertion == "uncertain") == (entity.assertion == "uncertain")
        and (position := sentence_index(sentences, other.start)) is not None
    }
    return tuple(sorted(positions))
