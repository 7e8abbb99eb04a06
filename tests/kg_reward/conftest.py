"""Shared fixtures of the kg_reward tests.

- ``extractor`` (session): the default extraction pipeline, loaded once, with its text cache
  off so that every test runs the pipeline.
"""

from __future__ import annotations

import pytest

import kg_reward
from kg_reward.extraction import Extractor


@pytest.fixture(scope="session")
def extractor() -> Extractor:
    loaded = kg_reward.load()
    loaded.cache_size = 0
    return loaded
