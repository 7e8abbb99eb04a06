"""Settings read from KG_REWARD_* environment variables."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from kg_reward.service.settings import Settings


def test_settings_defaults():
    settings = Settings()

    assert settings.max_text_chars == 100_000
    assert settings.cache_size == 4096
    assert settings.api_token is None
    assert settings.weights.entity == 0.5
    assert settings.options.answer_mode == "exact"


def test_settings_nested_weight_from_env(monkeypatch):
    monkeypatch.setenv("KG_REWARD_WEIGHTS__FORMAT", "0.2")

    assert Settings().weights.format == 0.2


def test_settings_options_json_from_env(monkeypatch):
    monkeypatch.setenv("KG_REWARD_OPTIONS", '{"preset": "chexpo"}')
    options = Settings().options

    assert options.match == "surface"
    assert options.answer_mode == "overlap"


def test_settings_log_level_case_insensitive(monkeypatch):
    monkeypatch.setenv("KG_REWARD_LOG_LEVEL", "debug")

    assert Settings().log_level == "DEBUG"


def test_settings_empty_token_is_none(monkeypatch):
    monkeypatch.setenv("KG_REWARD_API_TOKEN", "")

    assert Settings().api_token is None


def test_settings_text_limit_capped_at_extractor_limit():
    with pytest.raises(ValidationError, match="max_text_chars"):
        Settings(max_text_chars=100_001)


def test_settings_negative_weight_rejected(monkeypatch):
    monkeypatch.setenv("KG_REWARD_WEIGHTS__ANSWER", "-1")

    with pytest.raises(ValidationError, match="finite number >= 0"):
        Settings()


def test_settings_invalid_tag_name_rejected():
    with pytest.raises(ValidationError, match="think_tag"):
        Settings(think_tag="<think>")


def test_settings_ignore_unrelated_variables(monkeypatch):
    monkeypatch.setenv("KG_REWARD_URL", "http://127.0.0.1:8000")

    assert Settings().cache_size == 4096


def test_settings_nested_bool_option_from_env(monkeypatch):
    monkeypatch.setenv("KG_REWARD_OPTIONS__EXPLAIN", "true")

    assert Settings().options.explain is True


def test_settings_sentence_cache_size_from_env(monkeypatch):
    monkeypatch.setenv("KG_REWARD_SENTENCE_CACHE_SIZE", "0")

    assert Settings().sentence_cache_size == 0
