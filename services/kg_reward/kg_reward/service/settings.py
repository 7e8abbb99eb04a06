"""Settings of the reward service, read from ``KG_REWARD_*`` environment variables.

Nested values take JSON or ``__`` paths, for example ``KG_REWARD_OPTIONS='{"preset":
"chexpo"}'`` or ``KG_REWARD_WEIGHTS__FORMAT=0.2``.
"""

from __future__ import annotations

from typing import Literal

from kg_schema.scoring import ScoreOptions, Weights
from pydantic import DirectoryPath, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# The extractor rejects longer texts (kg_reward.extraction.MAX_TEXT_CHARS); it is repeated
# here so that reading the settings does not import spaCy.
EXTRACTOR_MAX_TEXT_CHARS = 100_000
# Tag names that kg_reward.tags.parse_completion accepts.
_TAG_NAME = r"^[A-Za-z][\w-]*$"


class Settings(BaseSettings):
    """Configuration of one service process; every worker reads the same environment."""

    model_config = SettingsConfigDict(
        env_prefix="KG_REWARD_", env_nested_delimiter="__", extra="ignore"
    )

    weights: Weights = Field(
        default_factory=Weights, description="Reward weights used when a request sends none."
    )
    options: ScoreOptions = Field(
        default_factory=ScoreOptions, description="Scoring options used when a request sends none."
    )
    max_batch_items: int = Field(
        default=1024, ge=1, description="Maximum items (or texts) accepted in one request."
    )
    max_text_chars: int = Field(
        default=EXTRACTOR_MAX_TEXT_CHARS,
        ge=1,
        le=EXTRACTOR_MAX_TEXT_CHARS,
        description="Maximum characters in one completion, reference or text.",
    )
    cache_size: int = Field(
        default=4096, ge=0, description="Reference graphs kept per worker; 0 disables the cache."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="Level of the kg_reward and uvicorn loggers."
    )
    api_token: SecretStr | None = Field(
        default=None,
        description="Bearer token required on /score, /extract and /openrlhf/reward; "
        "unset or empty leaves them open.",
    )
    pipeline_path: DirectoryPath | None = Field(
        default=None,
        description="Saved pipeline directory (Extractor.to_disk); unset builds the packaged one.",
    )
    think_tag: str = Field(
        default="think", pattern=_TAG_NAME, description="Name of the rationale tag."
    )
    answer_tag: str = Field(
        default="answer", pattern=_TAG_NAME, description="Name of the answer tag."
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("api_token", mode="before")
    @classmethod
    def _empty_token_is_none(cls, value: object) -> object:
        # Compose files often pass an empty variable to mean "no token".
        return None if value == "" else value
