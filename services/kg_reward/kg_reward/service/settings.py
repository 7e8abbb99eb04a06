"""Settings of the reward service, read from ``KG_REWARD_*`` environment variables.

Nested values take JSON or ``__`` paths, for example ``KG_REWARD_OPTIONS='{"preset":
"chexpo"}'`` or ``KG_REWARD_WEIGHTS__FORMAT=0.2``.
"""

from __future__ import annotations

import json
import re
from typing import Literal

from pydantic import DirectoryPath, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from kg_schema.scoring import ScoreOptions, Weights

# The extractor rejects longer texts (kg_reward.extraction.MAX_TEXT_CHARS); it is repeated
# here so that reading the settings does not import spaCy.
EXTRACTOR_MAX_TEXT_CHARS = 100_000
ENV_PREFIX = "KG_REWARD_"
# Tag names that kg_reward.tags.parse_completion accepts.
_TAG_NAME = r"^[A-Za-z][\w-]*$"


class Settings(BaseSettings):
    """Configuration of one service process; every worker reads the same environment."""

    model_config = SettingsConfigDict(
        env_prefix="KG_REWARD_", env_nested_delimiter="__", extra="ignore"
    )

    weights: Weights = Field(
        default_factory=Weights,
        description="Reward weights; a request's weights replace only the fields it sends.",
    )
    options: ScoreOptions = Field(
        default_factory=ScoreOptions,
        description="Scoring options; a request's options replace only the fields it sends.",
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
        default=4096,
        ge=0,
        description="Reference graphs kept per worker; 0 disables the reference cache.",
    )
    sentence_cache_size: int = Field(
        default=16384,
        ge=0,
        description="Sentences whose extraction results the extractor keeps per worker; 0 "
        "disables the sentence cache. Both caches must be 0 to turn caching fully off.",
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

    @field_validator("weights", "options", mode="before")
    @classmethod
    def _numbers_from_env(cls, value: object) -> object:
        # Environment variables are strings; KG_REWARD_WEIGHTS__FORMAT=0.2 must still reach
        # the strict number fields of Weights and ScoreOptions as a number.
        if isinstance(value, dict):
            return {key: _env_scalar(item) for key, item in value.items()}
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("api_token", mode="before")
    @classmethod
    def _empty_token_is_none(cls, value: object) -> object:
        # Compose files often pass an empty variable to mean "no token".
        return None if value == "" else value


def _env_scalar(value: object) -> object:
    """Parse a string from a nested environment variable as JSON, if it is a JSON scalar."""
    if not isinstance(value, str):
        return value
    try:
        parsed = json.loads(value)
    except ValueError:
        return value
    return parsed if isinstance(parsed, (int, float, bool)) else value


def describe_settings_error(error: Exception) -> str:
    """Describe invalid settings in one line that names each ``KG_REWARD_*`` variable.

    ``error`` is a pydantic ValidationError or a pydantic_settings SettingsError (a
    nested variable that is not valid JSON).
    """
    if isinstance(error, ValidationError):
        return "; ".join(
            f"{ENV_PREFIX}{'__'.join(str(part) for part in item['loc']).upper()}: "
            f"{str(item['msg']).removeprefix('Value error, ')}"
            for item in error.errors()
        )
    match = re.search(r'field "(\w+)"', str(error))
    if match:
        return (
            f"{ENV_PREFIX}{match.group(1).upper()} is not valid JSON; set it to a JSON object "
            """such as '{"preset": "chexpo"}', or unset it"""
        )
    return str(error)


def read_settings() -> Settings:
    """Read the settings from the environment.

    Raises ``ValueError``: a pydantic ValidationError for an invalid value, or a
    pydantic_settings SettingsError (a ValueError too) for a nested variable that is not
    valid JSON. ``describe_settings_error`` turns either into one line.
    """
    return Settings()
