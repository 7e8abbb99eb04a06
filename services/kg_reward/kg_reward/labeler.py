"""Report-level finding labels derived from extracted knowledge graphs.

A report's graph is reduced to one value per finding of a label schema:

- ``chestxray14``: the 14 ChestX-ray14 findings plus ``normal`` as 0/1, the layout of the
  Open-i gold standard that NegBio ships (``openi_gld_std14.csv``). A finding is 1 when a
  definite (not negated, not hedged) mention maps to it. The Open-i coders mostly left
  hedged findings ("may represent pneumonia") uncoded: on the 3,080 development reports,
  about one in five findings that the pipeline extracts only as hedged is coded 1.
  ``normal`` is 1 when the report contains no abnormal mention at all (not only none of
  the 14), as the Open-i coders mark it.
- ``chexpert``: the 14 CheXpert observations as ``1`` (positive), ``0`` (negative), ``-1``
  (uncertain) or blank (not mentioned). Across mentions positive wins over uncertain and
  uncertain over negative, as the CheXpert labeler aggregates them. ``No Finding`` is 1
  when no other observation except ``Support Devices`` is positive or uncertain.

A report without text (empty, whitespace, punctuation or only ``XXXX`` redaction marks) gets
no finding at all: every ChestX-ray14 column 0, ``normal`` included, and every CheXpert
column blank, ``No Finding`` included, because a missing report gives no evidence either way.
NOTE: the Open-i gold standard marks all 21 empty reports of the Indiana development split
``normal``, so this rule loses those 21 true positives of the ``normal`` column there.

Which entity maps to which finding is data: ``data/labeler/finding_map.csv`` (its README
names the sources). A rule matches an entity by canonical name and label and, optionally, by
the canonical name of an entity linked to it by ``located_at`` or ``modify`` (such as the
anatomy "heart" for "enlarged").
"""

from __future__ import annotations

import csv
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from kg_schema import Entity, KnowledgeGraph

if TYPE_CHECKING:
    from kg_reward.extraction import Extractor

logger = logging.getLogger(__name__)

SCHEMAS: tuple[str, ...] = ("chestxray14", "chexpert")

CHESTXRAY14_FINDINGS: tuple[str, ...] = (
    "Atelectasis",
    "Cardiomegaly",
    "Effusion",
    "Infiltration",
    "Mass",
    "Nodule",
    "Pneumonia",
    "Pneumothorax",
    "Consolidation",
    "Edema",
    "Emphysema",
    "Fibrosis",
    "Pleural_Thickening",
    "Hernia",
)
CHESTXRAY14_COLUMNS: tuple[str, ...] = ("filename", *CHESTXRAY14_FINDINGS, "normal")

# Observation order of the CheXpert labeler's output CSV (stanfordmlgroup/chexpert-labeler).
# That labeler's first column is the report text, and ours is the report uid.
CHEXPERT_OBSERVATIONS: tuple[str, ...] = (
    "No Finding",
    "Enlarged Cardiomediastinum",
    "Cardiomegaly",
    "Lung Lesion",
    "Lung Opacity",
    "Edema",
    "Consolidation",
    "Pneumonia",
    "Atelectasis",
    "Pneumothorax",
    "Pleural Effusion",
    "Pleural Other",
    "Fracture",
    "Support Devices",
)
CHEXPERT_COLUMNS: tuple[str, ...] = ("uid", *CHEXPERT_OBSERVATIONS)

POSITIVE, NEGATIVE, UNCERTAIN = 1, 0, -1
MAP_COLUMNS = ("schema", "finding", "canonical", "label", "linked", "value")
ANY = "*"


@dataclass(frozen=True)
class FindingRule:
    """One row of the finding map: an entity name, label and linked name that name a finding."""

    schema: str
    finding: str
    canonical: str
    """Entity canonical name, or '*' for any name."""
    label: str = ANY
    """Entity label prefix ('disorder' matches disorder_present and disorder_notpresent)."""
    linked: tuple[str, ...] = ()
    """Canonical names of entities that must all be related to this one; empty = none."""
    value: int | None = None
    """Fixed mention value (for example 0 for 'normal' heart size); None = from the assertion."""


class FindingMap:
    """Lookup from an entity and the names linked to it to the findings it mentions."""

    def __init__(self, rules: Iterable[FindingRule]) -> None:
        self._rules: dict[tuple[str, str], list[FindingRule]] = {}
        for rule in rules:
            self._rules.setdefault((rule.schema, rule.canonical), []).append(rule)

    @classmethod
    def from_csv(cls, path: str | Path | None = None) -> FindingMap:
        """Load the map from a CSV with the columns of ``MAP_COLUMNS`` (default: packaged)."""
        if path is None:
            source = resources.files("kg_reward") / "data" / "labeler" / "finding_map.csv"
            text = source.read_text(encoding="utf-8")
        else:
            text = Path(path).read_text(encoding="utf-8")
        return cls(_parse_rules(text.splitlines(), str(path or "finding_map.csv")))

    def findings(
        self, schema: str, entity: Entity, linked: Sequence[str]
    ) -> list[tuple[str, int | None]]:
        """Return (finding, fixed value or None) for every rule that matches the entity."""
        candidates = [
            *self._rules.get((schema, entity.canonical), ()),
            *self._rules.get((schema, ANY), ()),
        ]
        matches = []
        for rule in candidates:
            if rule.label != ANY and not entity.label.startswith(rule.label):
                continue
            if all(name in linked for name in rule.linked):
                matches.append((rule.finding, rule.value))
        return matches


def _parse_rules(lines: Iterable[str], origin: str) -> list[FindingRule]:
    reader = csv.DictReader(line for line in lines if not line.startswith("#"))
    if tuple(reader.fieldnames or ()) != MAP_COLUMNS:
        raise ValueError(f"{origin}: header must be {','.join(MAP_COLUMNS)}")
    rules = []
    for row in reader:
        if row["schema"] not in SCHEMAS:
            raise ValueError(f"{origin}: unknown schema {row['schema']!r} in {row}")
        known = CHESTXRAY14_FINDINGS if row["schema"] == "chestxray14" else CHEXPERT_OBSERVATIONS
        if row["finding"] not in known:
            raise ValueError(f"{origin}: unknown finding {row['finding']!r} in {row}")
        rules.append(
            FindingRule(
                schema=row["schema"],
                finding=row["finding"],
                canonical=row["canonical"],
                label=row["label"] or ANY,
                linked=tuple(name for name in row["linked"].split("&") if name),
                value=int(row["value"]) if row["value"] else None,
            )
        )
    return rules


def linked_names(graph: KnowledgeGraph) -> list[list[str]]:
    """Return, per entity, the canonical names of the entities related to it.

    ``located_at`` and ``modify`` relations count in both directions, so "enlarged"
    modifying "heart" links each to the other. ``suggestive_of`` does not count, because
    it joins two findings rather than a finding and its description.
    """
    linked: list[list[str]] = [[] for _ in graph.entities]
    for relation in graph.relations:
        if relation.type == "suggestive_of":
            continue
        linked[relation.head].append(graph.entities[relation.tail].canonical)
        linked[relation.tail].append(graph.entities[relation.head].canonical)
    return linked


def mention_value(entity: Entity) -> int:
    """Return the CheXpert-style value of one mention: 1, 0 or -1."""
    if entity.assertion == "absent" or entity.label.endswith("_notpresent"):
        return NEGATIVE
    if entity.assertion == "uncertain":
        return UNCERTAIN
    return POSITIVE


def collect_mentions(
    graph: KnowledgeGraph, schema: str, finding_map: FindingMap
) -> dict[str, list[int]]:
    """Return every mention value per finding of the schema found in the graph."""
    linked = linked_names(graph)
    mentions: dict[str, list[int]] = {}
    for index, entity in enumerate(graph.entities):
        for finding, fixed in finding_map.findings(schema, entity, linked[index]):
            mentions.setdefault(finding, []).append(
                mention_value(entity) if fixed is None else fixed
            )
    return mentions


@dataclass(frozen=True)
class NormalRule:
    """Decides which mentions make a report abnormal, for the ``normal`` column."""

    abnormal_descriptors: frozenset[str] = frozenset()
    """Concept and size names that make a report abnormal on their own ("tortuous")."""

    @classmethod
    def from_files(cls) -> NormalRule:
        """Load the packaged ``abnormal_descriptors.txt``."""
        return cls(_read_names("abnormal_descriptors.txt"))

    def is_abnormal(self, entity: Entity) -> bool:
        """Tell whether one mention makes its report abnormal.

        Every present or hedged finding or device does. A concept or size does when its name
        is an abnormal descriptor.
        """
        if entity.label in ("disorder_present", "devices_present"):
            return True
        if entity.label in ("concept", "size"):
            return entity.canonical in self.abnormal_descriptors
        return False


def _read_names(file_name: str) -> frozenset[str]:
    source = resources.files("kg_reward") / "data" / "labeler" / file_name
    lines = (line.strip() for line in source.read_text(encoding="utf-8").splitlines())
    return frozenset(line for line in lines if line and not line.startswith("#"))


def label_chestxray14(
    graph: KnowledgeGraph, finding_map: FindingMap, normal_rule: NormalRule
) -> dict[str, int]:
    """Return 0/1 per ChestX-ray14 finding and ``normal`` for one report graph."""
    mentions = collect_mentions(graph, "chestxray14", finding_map)
    labels = {
        finding: int(POSITIVE in mentions.get(finding, ())) for finding in CHESTXRAY14_FINDINGS
    }
    abnormal = any(normal_rule.is_abnormal(entity) for entity in graph.entities)
    labels["normal"] = int(not abnormal and not any(labels.values()))
    return labels


def label_chexpert(graph: KnowledgeGraph, finding_map: FindingMap) -> dict[str, int | None]:
    """Return 1/0/-1/None per CheXpert observation for one report graph."""
    mentions = collect_mentions(graph, "chexpert", finding_map)
    labels: dict[str, int | None] = {}
    for observation in CHEXPERT_OBSERVATIONS[1:]:
        labels[observation] = _aggregate(mentions.get(observation, []))

    others = [value for name, value in labels.items() if name != "Support Devices"]
    finding_seen = any(value in (POSITIVE, UNCERTAIN) for value in others)
    return {"No Finding": None if finding_seen else POSITIVE, **labels}


def _aggregate(values: Sequence[int]) -> int | None:
    for value in (POSITIVE, UNCERTAIN, NEGATIVE):
        if value in values:
            return value
    return None


# Redaction marks of de-identified reports: "XXXX" in Open-i. MIMIC-CXR's "___" needs no
# pattern, because underscores do not count as word characters here.
_REDACTION = re.compile(r"\bX{2,}\b", re.IGNORECASE)
_WORD_CHARACTER = re.compile(r"[^\W_]")


def has_report_text(text: str) -> bool:
    """Tell whether ``text`` contains a letter or digit outside redaction marks."""
    return _WORD_CHARACTER.search(_REDACTION.sub(" ", text)) is not None


def unlabelled_row(schema: str) -> dict[str, int | None]:
    """Return the row of a report without text: no finding, not normal, no ``No Finding``."""
    if schema == "chestxray14":
        return dict.fromkeys((*CHESTXRAY14_FINDINGS, "normal"), 0)
    return dict.fromkeys(CHEXPERT_OBSERVATIONS, None)


def report_text(findings: str, impression: str) -> str:
    """Join the findings and impression sections of a report into one text."""
    return "\n".join(part.strip() for part in (findings, impression) if part and part.strip())


def read_labels(path: str | Path, schema: str) -> dict[str, dict[str, str]]:
    """Read a label CSV in a schema's output layout, keyed by its id column.

    Raises FileNotFoundError for a missing file and ValueError for missing columns.
    """
    columns = CHESTXRAY14_COLUMNS if schema == "chestxray14" else CHEXPERT_COLUMNS
    with Path(path).open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [name for name in columns if name not in (reader.fieldnames or ())]
        if missing:
            raise ValueError(f"{path}: missing column(s) {', '.join(missing)} for schema {schema}")
        return {row[columns[0]]: row for row in reader}


def label_ids(uids: Sequence[str], schema: str) -> list[str]:
    """Return the output id of each report uid; the Open-i gold names report <uid> 'CXR<uid>'."""
    return [f"CXR{uid}" for uid in uids] if schema == "chestxray14" else list(uids)


def write_labels(
    path: str | Path, ids: Sequence[str], rows: Sequence[Mapping[str, int | None]], schema: str
) -> None:
    """Write label rows as CSV: the id column, then one column per finding (None = blank).

    Lines end with CRLF, the csv module's default and the line ending of the Open-i gold file.
    """
    columns = CHESTXRAY14_COLUMNS if schema == "chestxray14" else CHEXPERT_COLUMNS
    with Path(path).open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for row_id, row in zip(ids, rows, strict=True):
            values = ["" if row[name] is None else str(row[name]) for name in columns[1:]]
            writer.writerow([row_id, *values])


class Labeler:
    """Label reports with a schema's findings using a knowledge-graph extractor."""

    def __init__(
        self,
        extractor: Extractor,
        finding_map: FindingMap | None = None,
        normal_rule: NormalRule | None = None,
    ) -> None:
        self.extractor = extractor
        self.finding_map = finding_map or FindingMap.from_csv()
        self.normal_rule = normal_rule or NormalRule.from_files()

    def label_graphs(
        self, graphs: Sequence[KnowledgeGraph], schema: str
    ) -> list[Mapping[str, int | None]]:
        """Return one label row (finding -> value) per graph."""
        if schema == "chestxray14":
            return [label_chestxray14(g, self.finding_map, self.normal_rule) for g in graphs]
        if schema == "chexpert":
            return [label_chexpert(g, self.finding_map) for g in graphs]
        raise ValueError(f"unknown schema {schema!r}; expected one of {', '.join(SCHEMAS)}")

    def label_texts(
        self, texts: Sequence[str], schema: str, batch_size: int = 64
    ) -> list[Mapping[str, int | None]]:
        """Extract a graph from every text and return its label row.

        Texts without report text get ``unlabelled_row(schema)``.
        """
        graphs = self.extractor.extract(texts, batch_size=batch_size)
        logger.info("labelled %d reports with the %s schema", len(graphs), schema)
        rows = self.label_graphs(graphs, schema)
        return [
            row if has_report_text(text) else unlabelled_row(schema)
            for text, row in zip(texts, rows, strict=True)
        ]
