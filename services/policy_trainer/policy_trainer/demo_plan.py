"""What the demo runs at each scale: the stages, their config values and the report inputs.

``DEMO_SCALE`` (or ``--scale``) picks one of three sizes:

- ``tiny``: a tiny local model built by ``policy_trainer.tiny`` and a few reports and
  steps; it checks the wiring in CI in a few minutes on 2 CPU cores and learns nothing.
- ``small`` (the default of ``make demo``): SmolLM2-135M-Instruct on a few hundred
  reports, sized to stay under 30 minutes on 2 CPU cores (12 min measured on an idle
  2-core machine).
- ``full``: every report and the method's group size of 8; hours on a CPU, meant for a GPU.

Each stage's values start from the packaged stage YAML (``policy_trainer/configs/``), then
the scale's values, then the run's paths, then ``--set stage.field=value`` overrides.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

SCALE_NAMES = ("tiny", "small", "full")
# Subcommands whose config the demo writes; `--set STAGE.FIELD=VALUE` names one of them.
CONFIGURED_STAGES = ("synthesize", "sft", "mine", "grpo", "evaluate")


@dataclass(frozen=True)
class Scale:
    """The size of a demo run: the model and per-stage config values."""

    name: str
    tiny_model: bool
    values: Mapping[str, Mapping[str, Any]]


# Every value below is a size or a schedule; the method's settings (reward weights,
# KL beta, LoRA) keep the stage defaults.
SCALES: dict[str, Scale] = {
    "tiny": Scale(
        name="tiny",
        tiny_model=True,
        values={
            "synthesize": {"max_reports": 40},
            "sft": {"max_steps": 4, "per_device_train_batch_size": 4,
                    "gradient_accumulation_steps": 1, "max_length": 256, "logging_steps": 1,
                    "save_steps": 1000},
            "mine": {"sample_fraction": 0.25, "sizes": [16], "top_k": 2, "max_new_tokens": 24,
                     "batch_size": 8},
            "grpo": {"max_steps": 3, "num_generations": 2, "per_device_train_batch_size": 4,
                     "max_completion_length": 24, "logging_steps": 1, "save_steps": 1000},
            "evaluate": {"limit": 12, "max_new_tokens": 24, "batch_size": 12},
        },
    ),
    # The small scale uses larger learning rates than the packaged CPU configs, so that a
    # short run still learns. With 30 SFT steps at 2e-4, SmolLM2 closed an <answer> block
    # in 11 of 40 test answers (accuracy 0.10). With 60 steps at 1e-3, accuracy was 0.75.
    "small": Scale(
        name="small",
        tiny_model=False,
        values={
            "synthesize": {"max_reports": 400},
            "sft": {"max_steps": 60, "learning_rate": 1e-3, "per_device_train_batch_size": 4,
                    "gradient_accumulation_steps": 1, "max_length": 320, "logging_steps": 1,
                    "save_steps": 1000},
            "mine": {"sample_fraction": 0.03, "sizes": [48], "top_k": 4, "max_new_tokens": 64,
                     "batch_size": 16},
            "grpo": {"max_steps": 30, "learning_rate": 2e-4, "num_generations": 4,
                     "per_device_train_batch_size": 8, "max_completion_length": 64,
                     "logging_steps": 1, "save_steps": 1000},
            "evaluate": {"limit": 40, "max_new_tokens": 64, "batch_size": 20},
        },
    ),
    "full": Scale(
        name="full",
        tiny_model=False,
        values={
            "synthesize": {},
            "sft": {"num_train_epochs": 3.0},
            "mine": {},
            "grpo": {"max_steps": 500, "num_generations": 8, "per_device_train_batch_size": 8},
            "evaluate": {},
        },
    ),
}


@dataclass(frozen=True)
class Stage:
    """One demo stage: a ``policy-trainer`` subcommand with its config, or a raw command."""

    name: str
    command_name: str
    config: Mapping[str, Any] = field(default_factory=dict)
    command: Sequence[str] | None = None

    @property
    def config_name(self) -> str:
        """The key of ``--set`` overrides: the subcommand (both evaluations share one)."""
        return self.command_name


def packaged_config(stage: str) -> dict[str, Any]:
    """Return the values of the packaged CPU config of ``stage``, or ``{}`` if none exists."""
    folder = resources.files("policy_trainer") / "configs"
    for name in (f"cpu_smollm2_{stage}.yaml", f"{stage}_cpu.yaml", f"{stage}.yaml"):
        candidate = folder / name
        if candidate.is_file():
            data = yaml.safe_load(candidate.read_text(encoding="utf-8"))
            return dict(data or {})
    return {}


def plan(root: Path, scale: Scale, reward_url: str, reports: Path | None,
         python: str) -> list[Stage]:
    """Return the stages of one run in the order they run; ``root`` is the run folder."""
    data_dir = root / "data"
    sft_dir, mine_dir, grpo_dir, eval_dir = (root / name for name in
                                             ("sft", "mine", "grpo", "eval"))
    stages: list[Stage] = []

    base_model = "smollm2"
    if scale.tiny_model:
        base_model = str(root / "tiny_model")
        build = ("from pathlib import Path; from policy_trainer.tiny import "
                 f"build_tiny_causal_lm; print(build_tiny_causal_lm(Path({base_model!r})))")
        stages.append(Stage("tiny-model", "tiny-model", command=[python, "-c", build]))

    def values(stage: str, run_values: Mapping[str, Any]) -> dict[str, Any]:
        return {**packaged_config(stage), **scale.values.get(stage, {}), **run_values}

    stages.append(Stage("synthesize", "synthesize", values("synthesize", {
        "output_dir": data_dir, "input_path": reports,
    })))
    # Evaluation during training is off (eval_file: null): the demo evaluates on the
    # test split afterwards, and dev-set passes would add minutes on a CPU.
    stages.append(Stage("sft", "sft", values("sft", {
        "model_path": base_model, "train_file": data_dir / "train.jsonl",
        "eval_file": None, "output_dir": sft_dir,
    })))
    sft_model = sft_dir / "final"
    stages.append(Stage("mine", "mine", values("mine", {
        "model_path": sft_model, "pool_path": data_dir / "train.jsonl",
        "output_dir": mine_dir,
    })))
    stages.append(Stage("grpo", "grpo", values("grpo", {
        "model_path": sft_model, "train_file": mine_dir / "mined.jsonl", "eval_file": None,
        "output_dir": grpo_dir, "reward_urls": [reward_url],
    })))
    for name, model in (("sft", sft_model), ("grpo", grpo_dir / "final")):
        stages.append(Stage(f"evaluate-{name}", "evaluate", values("evaluate", {
            "model_path": model, "test_file": data_dir / "test.jsonl",
            "output_file": eval_dir / f"{name}.json", "reward_urls": [reward_url],
        })))
    return stages
