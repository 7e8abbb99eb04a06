"""Knowledge graphs of radiology text in the ReXKG label set.

A graph is a list of typed entities and a list of directed relations between them.
Relations point at entities by their position in ``entities`` so that the JSON stays
flat and two mentions of the same canonical term stay distinct.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

EntityLabel = Literal[
    "anatomy",
    "disorder_present",
    "disorder_notpresent",
    "devices_present",
    "devices_notpresent",
    "procedures",
    "concept",
    "size",
]
RelationType = Literal["modify", "located_at", "suggestive_of"]
Assertion = Literal["present", "absent", "uncertain"]

ENTITY_LABELS: tuple[str, ...] = EntityLabel.__args__  # type: ignore[attr-defined]
RELATION_TYPES: tuple[str, ...] = RelationType.__args__  # type: ignore[attr-defined]
ASSERTIONS: tuple[str, ...] = Assertion.__args__  # type: ignore[attr-defined]


class Entity(BaseModel):
    """One entity mention with its span in the source text."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(description="Surface text exactly as it appears in the source.")
    start: int = Field(ge=0, description="Character offset of the first character.")
    end: int = Field(ge=0, description="Character offset one past the last character.")
    label: EntityLabel = Field(description="ReXKG entity label.")
    canonical: str = Field(
        description="Normalized name: lowercase, singular, synonyms and abbreviations "
        "resolved, laterality kept (for example 'left lower lobe')."
    )
    assertion: Assertion = Field(
        default="present",
        description="present, absent (negated) or uncertain (hedged). Uncertain findings "
        "carry a *_present label.",
    )

    @model_validator(mode="after")
    def _check_span(self) -> Entity:
        if self.end < self.start:
            raise ValueError(
                f"entity end ({self.end}) is before start ({self.start}); "
                "end must be the offset one past the last character"
            )
        return self


class Relation(BaseModel):
    """A directed relation between two entities of the same graph."""

    model_config = ConfigDict(extra="forbid")

    head: int = Field(ge=0, description="Index of the source entity in `entities`.")
    tail: int = Field(ge=0, description="Index of the target entity in `entities`.")
    type: RelationType = Field(
        description="modify (modifier -> head), located_at (finding or device -> anatomy), "
        "suggestive_of (finding -> the finding it implies)."
    )


class KnowledgeGraph(BaseModel):
    """The knowledge graph of one text."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(default=None, description="Caller's identifier of the text.")
    entities: list[Entity] = Field(default_factory=list)
    relations: list[Relation] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check_relation_indices(self) -> KnowledgeGraph:
        count = len(self.entities)
        for position, relation in enumerate(self.relations):
            if relation.head >= count or relation.tail >= count:
                raise ValueError(
                    f"relations[{position}] points at entity {relation.head} -> "
                    f"{relation.tail}, but the graph has only {count} entities"
                )
        return self

    def entity_keys(
        self, match: Literal["canonical", "surface"] = "canonical"
    ) -> set[tuple[str, str]]:
        """Return the set of (name, label) pairs that reward matching compares.

        ``canonical`` uses the normalized name; ``surface`` uses the exact surface text,
        as the published CheXPO-v2 code does.
        """
        return {(self._name(entity, match), entity.label) for entity in self.entities}

    def relation_keys(
        self, match: Literal["canonical", "surface"] = "canonical", *, labels: bool = False
    ) -> set[tuple[str, ...]]:
        """Return the set of (head name, relation type, tail name) triplets.

        With ``labels=True`` each end carries its entity label, (head name, head label,
        type, tail name, tail label), so that "no left pleural effusion" (head label
        disorder_notpresent) does not match "left pleural effusion" (disorder_present).
        The reward uses labelled keys in ``canonical`` mode and plain surface triplets in
        ``surface`` mode, as the published CheXPO-v2 code does.
        """
        keys: set[tuple[str, ...]] = set()
        for relation in self.relations:
            head, tail = self.entities[relation.head], self.entities[relation.tail]
            if labels:
                keys.add(
                    (
                        self._name(head, match),
                        head.label,
                        relation.type,
                        self._name(tail, match),
                        tail.label,
                    )
                )
            else:
                keys.add((self._name(head, match), relation.type, self._name(tail, match)))
        return keys

    def to_rexkg(self) -> dict[str, object]:
        """Convert to ReXKG's per-document layout.

        ReXKG stores ``entities`` as a map from surface text to label and ``relations`` as
        ``{source_entity, target_entity, type}`` records, so repeated mentions of one text
        collapse into one key (the first label wins).
        """
        entities: dict[str, str] = {}
        for entity in self.entities:
            entities.setdefault(entity.text, entity.label)
        relations = [
            {
                "source_entity": self.entities[relation.head].text,
                "target_entity": self.entities[relation.tail].text,
                "type": relation.type,
            }
            for relation in self.relations
        ]
        return {"id": self.id, "entities": entities, "relations": relations}

    @staticmethod
    def _name(entity: Entity, match: str) -> str:
        return entity.canonical if match == "canonical" else entity.text
