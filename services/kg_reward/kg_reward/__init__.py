"""kg_reward: radiology knowledge-graph extraction and process rewards.

Importing this package is cheap: spaCy loads only when ``load()`` is called, so the
HTTP client (``kg_reward.client``) can be used by trainers without the pipeline.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kg_reward.extraction import Extractor


def load(path: str | Path | None = None) -> Extractor:
    """Return an ``Extractor``: the default pipeline, or the one saved at ``path``."""
    from kg_reward.spacy_import import import_spacy

    import_spacy()
    from kg_reward.extraction import load_extractor

    return load_extractor(path)
