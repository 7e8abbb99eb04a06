"""Session fixtures of the policy trainer tests: a tiny model, its SFT run, the QA records.

The SFT fixture trains the tiny model for a few seconds at a high learning rate so that
its sampled completions contain some radiology words. Only then do the completions of a
group differ in reward, which GRPO needs for a non-zero advantage.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

DATA_DIR = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def chat_records_path() -> Path:
    """Twelve QA records in the schema of ``policy-trainer synthesize``."""
    return DATA_DIR / "chat_records.jsonl"


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A freshly built tiny Qwen2 model without the tag tokens."""
    from policy_trainer.tiny import build_tiny_causal_lm

    return build_tiny_causal_lm(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="session")
def sft_run_dir(
    tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path, chat_records_path: Path
) -> Path:
    """Output folder of a 30-step SFT run of the tiny model; ``final/`` is the merged model."""
    from policy_trainer.sft import SFTStageConfig, run_sft

    output_dir = tmp_path_factory.mktemp("sft")
    config = SFTStageConfig(
        model_path=str(tiny_model_dir),
        train_file=chat_records_path,
        output_dir=output_dir,
        max_steps=30,
        learning_rate=5e-3,  # a tiny random model needs large steps to learn anything in 30
        per_device_train_batch_size=4,
        logging_steps=10,
        save_steps=30,
        lora_r=8,
        lora_alpha=16,
        seed=0,
    )
    run_sft(config)
    return output_dir
