"""Wire contract shared by the kg_reward service and its clients."""

from kg_schema.graph import (
    ASSERTIONS,
    ENTITY_LABELS,
    RELATION_TYPES,
    Assertion,
    Entity,
    EntityLabel,
    KnowledgeGraph,
    Relation,
    RelationType,
)
from kg_schema.scoring import (
    Components,
    Explanation,
    ExtractRequest,
    ExtractResponse,
    ScoreItem,
    ScoreOptions,
    ScoreRequest,
    ScoreResponse,
    SetComparison,
    Weights,
)

__all__ = [
    "ASSERTIONS",
    "ENTITY_LABELS",
    "RELATION_TYPES",
    "Assertion",
    "Components",
    "Entity",
    "EntityLabel",
    "Explanation",
    "ExtractRequest",
    "ExtractResponse",
    "KnowledgeGraph",
    "Relation",
    "RelationType",
    "ScoreItem",
    "ScoreOptions",
    "ScoreRequest",
    "ScoreResponse",
    "SetComparison",
    "Weights",
]
