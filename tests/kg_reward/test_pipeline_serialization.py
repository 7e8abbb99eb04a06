"""Saving and loading the extraction pipeline as a directory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import kg_reward
from kg_reward.errors import InputError
from kg_reward.extraction import Extractor

TEXTS = [
    "FINDINGS: Small left pleural effusion. Opacity in the right lower lobe may represent "
    "pneumonia. No pneumothorax. ETT 4 cm above the carina.",
    "IMPRESSION: 1. Mild cardiomegaly. 2. Lungs are clear.",
]


def test_pipeline_round_trip_same_graphs(extractor: Extractor, tmp_path: Path) -> None:
    extractor.to_disk(tmp_path / "pipeline")

    loaded = kg_reward.load(tmp_path / "pipeline")

    assert loaded.nlp.pipe_names == extractor.nlp.pipe_names
    assert loaded.extract(TEXTS) == extractor.extract(TEXTS)


def test_pipeline_round_trip_keeps_data_files(extractor: Extractor, tmp_path: Path) -> None:
    extractor.to_disk(tmp_path / "pipeline")

    for name in ("kg_sections/titles.jsonl", "kg_entities/entries.jsonl", "kg_context/cues.jsonl"):
        assert (tmp_path / "pipeline" / name).is_file(), name


def test_load_missing_directory_raises(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a saved pipeline directory"):
        kg_reward.load(tmp_path / "nothing-here")


@pytest.mark.slow
def test_load_keeps_torch_out() -> None:
    # The reward service must not load torch; thinc imports it whenever it is installed.
    probe = (
        "import sys, kg_reward\n"
        "kg_reward.load().extract_one('Small effusion.')\n"
        "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))\n"
    )

    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=300, check=True
    )

    assert result.stdout.strip() == "[]"
