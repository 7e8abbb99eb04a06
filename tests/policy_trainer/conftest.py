"""Session fixtures of the policy trainer tests: a tiny model, its SFT run, the QA records.

The SFT fixture trains the tiny model for 150 steps at a high learning rate, until its
sampled completions copy whole phrases of the references inside <think> and <answer>.
Only then do the completions of a group differ in reward, which GRPO needs for a non-zero
advantage: after 30 steps every completion still scored 0.

torch runs on one thread here. On a shared 2-core machine two threads made each small
matrix product about 30 times slower (5 ms instead of 0.15 ms).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

torch.set_num_threads(1)

DATA_DIR = Path(__file__).parent / "data"
SFT_STEPS = 150


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
    """Output folder of an SFT run of the tiny model; ``final/`` is the merged model."""
    from policy_trainer.sft import SFTStageConfig, run_sft

    output_dir = tmp_path_factory.mktemp("sft")
    config = SFTStageConfig(
        model_path=str(tiny_model_dir),
        train_file=chat_records_path,
        eval_file=chat_records_path,
        eval_steps=SFT_STEPS,
        output_dir=output_dir,
        max_steps=SFT_STEPS,
        learning_rate=5e-3,  # a tiny random model needs large steps to learn in few
        per_device_train_batch_size=4,
        logging_steps=50,
        save_steps=SFT_STEPS,
        lora_r=8,
        lora_alpha=16,
        seed=0,
    )
    run_sft(config)
    return output_dir
