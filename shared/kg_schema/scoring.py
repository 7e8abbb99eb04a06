"""Request and response bodies of the kg_reward HTTP API.

Both the service and its clients import these models, so a field changes in one place.
Limits on batch and text size are settings of the service, not of this contract.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from kg_schema.graph import KnowledgeGraph

AnswerMode = Literal["exact", "set", "overlap"]
Metric = Literal["jaccard", "f1", "fbeta"]
MatchMode = Literal["canonical", "surface"]
Preset = Literal["chexpo"]

# Weights above this make the reward too large to be useful and, summed, can overflow
# to infinity; the limit keeps every reward finite.
MAX_WEIGHT = 1e6


def check_unicode(text: str) -> str:
    """Reject text with a lone UTF-16 surrogate (U+D800 to U+DFFF).

    JSON allows such escapes (``"\\ud800"``), but the text cannot be encoded as UTF-8,
    so spaCy and every HTTP client fail on it.
    """
    for position, character in enumerate(text):
        if "\ud800" <= character <= "\udfff":
            raise ValueError(
                f"contains a lone UTF-16 surrogate (U+{ord(character):04X}) at character "
                f"{position}, which is not valid Unicode; remove it or decode the source text "
                "with errors='replace'"
            )
    return text


UnicodeText = Annotated[str, AfterValidator(check_unicode)]
"""A string that can be encoded as UTF-8."""


def _check_has_text(text: str) -> str:
    if not text.strip():
        raise ValueError("must contain text; send the reference rationale")
    return text


class Weights(BaseModel):
    """Weights of the composite reward, each a number in [0, MAX_WEIGHT] (1e6).

    Fields are strict: a JSON string ("0.5") or boolean is rejected, an integer is accepted.
    """

    model_config = ConfigDict(extra="forbid")

    answer: float = Field(default=1.0, strict=True, description="Weight of the final-answer match.")
    entity: float = Field(
        default=0.5, strict=True, description="Weight of the entity-set similarity."
    )
    relation: float = Field(
        default=0.5, strict=True, description="Weight of the relation-set similarity."
    )
    format: float = Field(
        default=0.0, strict=True, description="Weight of the think/answer format check."
    )

    @field_validator("answer", "entity", "relation", "format")
    @classmethod
    def _finite_non_negative(cls, value: float) -> float:
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"weight must be a finite number >= 0, got {value!r}")
        if value > MAX_WEIGHT:
            raise ValueError(
                f"weight must be at most {MAX_WEIGHT:g}, got {value!r}; scale all weights down "
                "together, since only their ratios change the ranking of completions"
            )
        return value


class ScoreOptions(BaseModel):
    """Options of the component computation. ``preset`` overrides the other fields.

    Numbers and ``explain`` are strict: JSON strings and booleans are rejected where a
    number is expected, and strings or numbers where a boolean is.
    """

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
        default=2.0,
        gt=0,
        le=100,
        strict=True,
        description="F-beta weight of recall; used when metric=fbeta.",
    )
    match: MatchMode = Field(
        default="canonical",
        description="canonical: entities as (normalized name, label) and relations as (head "
        "name, head label, type, tail name, tail label), so a negated finding never matches "
        "an affirmed one. surface: entities as (exact surface text, label) and relations as "
        "(head text, type, tail text), as the published CheXPO-v2 code does (case-sensitive).",
    )
    empty_score: float = Field(
        default=1.0,
        ge=0,
        le=1,
        strict=True,
        description="Similarity when both sets are empty. At 1.0 a rationale without "
        "findings gets full entity and relation credit against a reference without findings.",
    )
    explain: bool = Field(
        default=False,
        strict=True,
        description="Return matched, missing and extra items per completion; never changes "
        "the reward.",
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

    id: UnicodeText | None = Field(
        default=None, description="Caller's identifier, echoed in logs."
    )
    completion: UnicodeText = Field(
        description="Model output with <think> and <answer> blocks; may be empty (it scores low)."
    )
    reference: Annotated[UnicodeText, AfterValidator(_check_has_text)] = Field(
        description="Reference rationale; may carry its own <think>/<answer> tags. Must "
        "contain text."
    )
    reference_answer: UnicodeText | None = Field(
        default=None,
        description="Reference final answer. When absent, the <answer> block of `reference` "
        "is used.",
    )


class ScoreRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[ScoreItem]
    weights: Weights | None = Field(
        default=None,
        description="Fields left out keep the service defaults (KG_REWARD_WEIGHTS).",
    )
    options: ScoreOptions | None = Field(
        default=None,
        description="Fields left out keep the service defaults (KG_REWARD_OPTIONS). A preset "
        "set here or in the defaults applies over the merged options.",
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

    texts: list[UnicodeText]
    ids: list[UnicodeText] | None = Field(
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
