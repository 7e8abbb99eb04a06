"""GRPO end to end on CPU: the tiny SFT model against a real kg_reward server on 127.0.0.1.

One module-scoped run serves the checks of a healthy service; the fault and resume tests
run their own short trainings.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file
from transformers import TrainerCallback

from policy_trainer.grpo import GRPOStageConfig, run_grpo

pytestmark = pytest.mark.slow

STEPS = 3
NUM_GENERATIONS = 4
BATCH = 8  # completions per step: 2 prompts x NUM_GENERATIONS
COMPONENTS = ("answer", "entity", "relation")


def grpo_config(sft_run_dir: Path, output_dir: Path, url: str, **overrides: Any) -> GRPOStageConfig:
    values: dict[str, Any] = {
        "model_path": str(sft_run_dir / "final"),
        "train_file": Path(__file__).parent / "data" / "chat_records.jsonl",
        "output_dir": output_dir,
        "reward_urls": [url],
        "reward_max_attempts": 2,
        "reward_backoff_initial": 0.1,
        "reward_backoff_max": 0.2,
        "reward_read_timeout": 30.0,
        "max_steps": STEPS,
        "num_generations": NUM_GENERATIONS,
        "per_device_train_batch_size": BATCH,
        "max_completion_length": 24,  # the tiny model writes noise; short keeps steps fast
        "learning_rate": 1e-3,
        "lora_r": 8,
        "lora_alpha": 16,
        "save_steps": 1,
        "save_total_limit": None,
        "seed": 0,
    }
    values.update(overrides)
    return GRPOStageConfig(**values)


def read_rows(output_dir: Path) -> list[dict[str, Any]]:
    lines = (output_dir / "completions.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def adapter_weights(checkpoint: Path) -> dict[str, torch.Tensor]:
    weights = load_file(str(checkpoint / "adapter_model.safetensors"))
    return {name: tensor for name, tensor in weights.items() if "lora_" in name}


@pytest.fixture(scope="module")
def grpo_run(
    sft_run_dir: Path, reward_server_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    output_dir = tmp_path_factory.mktemp("grpo")
    run_grpo(grpo_config(sft_run_dir, output_dir, reward_server_url))
    return output_dir


def test_grpo_lora_weights_change(grpo_run: Path) -> None:
    lora_b = {
        name: tensor for name, tensor in adapter_weights(grpo_run / f"checkpoint-{STEPS}").items()
        if "lora_B" in name
    }
    assert lora_b
    # PEFT starts every lora_B at zero, so any non-zero entry was learned.
    assert any(tensor.abs().sum() > 0 for tensor in lora_b.values())


def test_grpo_merged_model_differs_from_sft(grpo_run: Path, sft_run_dir: Path) -> None:
    before = load_file(str(sft_run_dir / "final" / "model.safetensors"))
    after = load_file(str(grpo_run / "final" / "model.safetensors"))
    assert before.keys() == after.keys()
    changed = [name for name in before if not torch.equal(before[name], after[name])]
    assert any("q_proj" in name for name in changed)


def test_grpo_logs_every_component_per_step(grpo_run: Path) -> None:
    history = json.loads((grpo_run / "log_history.json").read_text())
    step_logs = [entry for entry in history if "rewards/answer/mean" in entry]
    assert [entry["step"] for entry in step_logs] == list(range(1, STEPS + 1))
    for entry in step_logs:
        for name in COMPONENTS:
            assert entry[f"rewards/{name}/mean"] is not None, (name, entry)
        assert entry["reward"] is not None


def test_grpo_completions_jsonl_rows(grpo_run: Path) -> None:
    rows = read_rows(grpo_run)
    assert len(rows) == STEPS * BATCH
    assert Counter(row["step"] for row in rows) == {step: BATCH for step in range(1, STEPS + 1)}
    for row in rows:
        assert row["scored"] is True
        assert isinstance(row["completion"], str)
        assert row["prompt"]
        for name in COMPONENTS:
            assert 0.0 <= row[name] <= 1.0
        expected = row["answer"] + 0.5 * row["entity"] + 0.5 * row["relation"]
        assert row["reward"] == pytest.approx(expected)


def test_grpo_writes_final_and_config(grpo_run: Path) -> None:
    assert (grpo_run / "final" / "model.safetensors").is_file()
    assert (grpo_run / "config.yaml").is_file()
    assert json.loads((grpo_run / "metrics.json").read_text())["train_runtime"] > 0


class ServerOutage(TrainerCallback):
    """Stop the reward server after step 1 and restart it after step 2."""

    def __init__(self, server: Any):
        self.server = server

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.global_step == 1:
            self.server.stop()
        elif state.global_step == 2:
            self.server.restart()


class WarningRecorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture(scope="module")
def outage_run(
    sft_run_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, list[str]]:
    """A run whose reward server is down during step 2; returns its folder and warnings."""
    # reward_server_factory is function-scoped, so this module-scoped run starts its own
    # server the same way.
    from tests.conftest import RewardServer, _server_env, free_port

    log_dir = tmp_path_factory.mktemp("outage")
    server = RewardServer(workers=1, port=free_port(), env=_server_env(None),
                          log_path=log_dir / "serve.log")
    server.start()
    recorder = WarningRecorder()
    logging.getLogger("policy_trainer").addHandler(recorder)
    try:
        config = grpo_config(sft_run_dir, log_dir / "run", server.url)
        run_grpo(config, callbacks=[ServerOutage(server)])
    finally:
        logging.getLogger("policy_trainer").removeHandler(recorder)
        server.stop()
    return config.output_dir, recorder.messages


def test_grpo_outage_marks_step_unscored(outage_run: tuple[Path, list[str]]) -> None:
    rows = read_rows(outage_run[0])
    scored_by_step = {
        step: {row["scored"] for row in rows if row["step"] == step} for step in (1, 2, 3)
    }
    assert scored_by_step == {1: {True}, 2: {False}, 3: {True}}


def test_grpo_outage_logs_warning_with_step(outage_run: tuple[Path, list[str]]) -> None:
    warnings = outage_run[1]
    assert any(message.startswith("Step 2: 8 of 8 completions got no reward")
               for message in warnings), warnings
    assert not any(message.startswith(("Step 1:", "Step 3:")) for message in warnings)


def test_grpo_outage_step_leaves_weights_unchanged(outage_run: tuple[Path, list[str]]) -> None:
    output_dir = outage_run[0]
    after_step_1 = adapter_weights(output_dir / "checkpoint-1")
    after_step_2 = adapter_weights(output_dir / "checkpoint-2")
    after_step_3 = adapter_weights(output_dir / "checkpoint-3")
    assert all(torch.equal(after_step_1[name], after_step_2[name]) for name in after_step_1)
    assert any(not torch.equal(after_step_2[name], after_step_3[name]) for name in after_step_2)


def test_grpo_outage_logs_null_rewards_for_step(outage_run: tuple[Path, list[str]]) -> None:
    history = json.loads((outage_run[0] / "log_history.json").read_text())
    by_step = {entry["step"]: entry for entry in history if "rewards/answer/mean" in entry}
    assert by_step[2]["rewards/answer/mean"] is None
    assert by_step[3]["rewards/answer/mean"] is not None


def test_grpo_resume_continues_from_last_checkpoint(
    grpo_run: Path, sft_run_dir: Path, reward_server_url: str, tmp_path: Path
) -> None:
    # A copy of the finished run, cut back as if the process died during step 3 before
    # it could save: checkpoint-2 is the last one, and completions.jsonl already contains
    # the rows of the unfinished step 3.
    output_dir = tmp_path / "run"
    shutil.copytree(grpo_run, output_dir)
    shutil.rmtree(output_dir / f"checkpoint-{STEPS}")
    shutil.rmtree(output_dir / "final")

    config = grpo_config(sft_run_dir, output_dir, reward_server_url, max_steps=STEPS + 1,
                         resume=True)
    run_grpo(config)

    rows = read_rows(output_dir)
    assert Counter(row["step"] for row in rows) == {step: BATCH for step in range(1, STEPS + 2)}
    state = json.loads((output_dir / f"checkpoint-{STEPS + 1}" / "trainer_state.json").read_text())
    assert state["global_step"] == STEPS + 1
    steps_logged = [
        entry["step"] for entry in state["log_history"] if "rewards/answer/mean" in entry
    ]
    assert steps_logged == list(range(1, STEPS + 2))


def test_grpo_two_cpu_processes_share_steps(
    sft_run_dir: Path, reward_server_url: str, tmp_path: Path
) -> None:
    # torchrun starts two DDP processes on CPU (gloo), as accelerate launch does per GPU.
    output_dir = tmp_path / "run"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "policy_trainer.cli", "grpo",
        "--model_path", str(sft_run_dir / "final"),
        "--train_file", str(Path(__file__).parent / "data" / "chat_records.jsonl"),
        "--output_dir", str(output_dir), "--reward_urls", f"[{reward_server_url}]",
        "--num_generations", "4", "--per_device_train_batch_size", "4",
        "--max_completion_length", "16", "--max_steps", "2", "--lora_r", "8",
        "--use_cpu", "true",
    ]  # fmt: skip
    completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]

    rows = read_rows(output_dir)
    # Each step holds one group of 4 completions from each of the two processes.
    assert Counter(row["step"] for row in rows) == {1: 8, 2: 8}
    assert len({row["id"] for row in rows if row["step"] == 1}) == 2
    assert (output_dir / "final" / "model.safetensors").is_file()
