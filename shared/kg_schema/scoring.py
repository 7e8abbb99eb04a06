"""Request and response bodies of the kg_reward HTTP API.

Both the service and its clients import these models, so a field changes in one place.
Limits on batch and text size are settings of the service, not of this contract.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from kg_schema.graph import KnowledgeGraph

AnswerMode = Literal["exact", "set", "overlap"]
Metric = Literal["jaccard", "f1", "fbeta"]
MatchMode = Literal["canonical", "surface"]
Preset = Literal["chexpo"]


class Weights(BaseModel):
    """Weights of the composite reward; each must be finite and non-negative."""

    model_config = ConfigDict(extra="forbid")

    answer: float = Field(default=1.0, description="Weight of the final-answer match.")
    entity: float = Field(default=0.5, description="Weight of the entity-set similarity.")
    relation: float = Field(default=0.5, description="Weight of the relation-set similarity.")
    format: float = Field(default=0.0, description="Weight of the think/answer format check.")

    @field_validator("answer", "entity", "relation", "format")
    @classmethod
    def _finite_non_negative(cls, value: float) -> float:
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"weight must be a finite number >= 0, got {value!r}")
        return value


class ScoreOptions(BaseModel):
    """How the components are computed. ``preset`` overrides the other fields."""

    model_config = ConfigDict(extra="forbid")

    preset: Preset | None = Field(
        default=None,
        description="'chexpo' reproduces the published reward: overlap answer, surface "
        "match, Jaccard, both-empty = 1.0. It overrides answer_mode, metric, match and "
        "empty_score.",
    )
    answer_mode: AnswerMode = Field(
        default="exact",
        description="exact: normalized string equality; set: Jaccard of comma/'and' "
        "separated items; overlap: 1 if any item matches.",
    )
    metric: Metric = Field(
        default="jaccard",
        description="Set similarity for entities and relations: jaccard, f1, or fbeta "
        "(recall-weighted with `beta`).",
    )
    beta: float = Field(
        default=2.0, gt=0, le=100, description="F-beta weight of recall; used when metric=fbeta."
    )
    match: MatchMode = Field(
        default="canonical",
        description="canonical: (normalized name, label); surface: (exact surface text, label).",
    )
    empty_score: float = Field(
        default=1.0, ge=0, le=1, description="Similarity when both sets are empty."
    )
    explain: bool = Field(
        default=False, description="Return matched, missing and extra items per completion."
    )

    @model_validator(mode="after")
    def _apply_preset(self) -> ScoreOptions:
        if self.preset == "chexpo":
            self.answer_mode = "overlap"
            self.match = "surface"
            self.metric = "jaccard"
            self.empty_score = 1.0
        return self


class ScoreItem(BaseModel):
    """One completion with its own reference."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(default=None, description="Caller's identifier, echoed in logs.")
    completion: str = Field(description="Model output with <think> and <answer> blocks.")
    reference: str = Field(
        description="Reference rationale; may carry its own <think>/<answer> tags."
    )
    reference_answer: str | None = Field(
        default=None,
        description="Reference final answer. When absent, the <answer> block of `reference` "
        "is used.",
    )


class ScoreRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[ScoreItem]
    weights: Weights | None = Field(default=None, description="Defaults come from the service.")
    options: ScoreOptions | None = Field(
        default=None, description="Defaults come from the service."
    )


class Components(BaseModel):
    """Reward components of one item, each in [0, 1]; None where not computable."""

    answer: float | None = None
    entity: float | None = None
    relation: float | None = None
    format: float | None = None


class SetComparison(BaseModel):
    matched: list[list[str]] = Field(default_factory=list)
    missing: list[list[str]] = Field(
        default_factory=list, description="In the reference, absent from the completion."
    )
    extra: list[list[str]] = Field(
        default_factory=list, description="In the completion, absent from the reference."
    )


class Explanation(BaseModel):
    id: str | None = None
    completion_answer: str | None = None
    reference_answer: str | None = None
    entities: SetComparison = Field(default_factory=SetComparison)
    relations: SetComparison = Field(default_factory=SetComparison)


class ScoreResponse(BaseModel):
    rewards: list[float]
    components: list[Components]
    explanations: list[Explanation] | None = None


class ExtractRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    texts: list[str]
    ids: list[str] | None = Field(
        default=None, description="Optional identifiers, one per text, in the same order."
    )

    @model_validator(mode="after")
    def _check_lengths(self) -> ExtractRequest:
        if self.ids is not None and len(self.ids) != len(self.texts):
            raise ValueError(
                f"ids has {len(self.ids)} entries but texts has {len(self.texts)}; "
                "send one id per text or omit ids"
            )
        return self


class ExtractResponse(BaseModel):
    graphs: list[KnowledgeGraph]
