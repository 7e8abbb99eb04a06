"""Fields and helpers shared by the training stages (SFT and GRPO).

``TrainingFields`` contains what both stages pass to their TRL config; ``trainer_arguments``
maps it onto the keyword arguments of ``transformers.TrainingArguments`` that TRL's
``SFTConfig`` and ``GRPOConfig`` extend.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from policy_trainer.errors import ConfigError
from policy_trainer.models import MixedPrecision

logger = logging.getLogger(__name__)

CHECKPOINT_PREFIX = "checkpoint-"


@dataclass
class TrainingFields:
    """Data, schedule and checkpoint fields of a training stage."""

    train_file: Path | None = field(
        default=None, metadata={"help": "Chat-format JSONL with the training records (required)."}
    )
    eval_file: Path | None = field(
        default=None, metadata={"help": "Optional chat-format JSONL evaluated every eval_steps."}
    )
    output_dir: Path = field(
        default=Path("runs/stage"), metadata={"help": "Folder of checkpoints, logs and final/."}
    )
    learning_rate: float = field(default=1e-5, metadata={"help": "Peak AdamW learning rate."})
    num_train_epochs: float = field(
        default=1.0, metadata={"help": "Passes over train_file; ignored when max_steps > 0."}
    )
    max_steps: int = field(
        default=-1, metadata={"help": "Optimizer steps to run; -1 runs num_train_epochs."}
    )
    per_device_train_batch_size: int = field(
        default=8, metadata={"help": "Sequences per device and forward pass."}
    )
    gradient_accumulation_steps: int = field(
        default=1, metadata={"help": "Forward passes summed into one optimizer step."}
    )
    logging_steps: int = field(default=1, metadata={"help": "Optimizer steps between log lines."})
    eval_steps: int = field(
        default=50, metadata={"help": "Optimizer steps between evaluations on eval_file."}
    )
    save_steps: int = field(
        default=50, metadata={"help": "Optimizer steps between checkpoints in output_dir."}
    )
    save_total_limit: int | None = field(
        default=3, metadata={"help": "Checkpoints kept; older ones are deleted. null keeps all."}
    )
    progress_bar: bool = field(
        default=True,
        metadata={"help": "Show the trainer's tqdm progress bar (false for log files only)."},
    )
    seed: int = field(default=42, metadata={"help": "Seed of data order, dropout and sampling."})
    mixed_precision: MixedPrecision = field(
        default="no", metadata={"help": "Autocast on GPU: no, bf16 or fp16. Use no on CPU."}
    )
    use_cpu: bool = field(
        default=False,
        metadata={"help": "Train on CPU even when a GPU is present. Also needed for several "
                          "CPU processes under torchrun, which transformers otherwise runs as "
                          "independent single-process jobs."},
    )
    gradient_checkpointing: bool = field(
        default=False, metadata={"help": "Recompute activations in backward to save memory."}
    )
    report_to: list[str] = field(
        default_factory=lambda: ["none"],
        metadata={"help": "Experiment trackers of transformers (wandb, tensorboard, ...); "
                          "[none] logs to files only."},
    )
    resume: bool = field(
        default=False,
        metadata={"help": "Resume from the last checkpoint-N folder in output_dir."},
    )

    def check_training(self) -> None:
        """Raise ValueError for missing files and out-of-range schedule values."""
        if self.train_file is None:
            raise ValueError("train_file is required; set it to a chat-format JSONL file")
        if not math.isfinite(self.learning_rate) or self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be a positive number, got {self.learning_rate}")
        for name in ("per_device_train_batch_size", "gradient_accumulation_steps",
                     "logging_steps", "eval_steps", "save_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_steps == 0 or self.max_steps < -1:
            raise ValueError(f"max_steps must be -1 (use num_train_epochs) or >= 1, "
                             f"got {self.max_steps}")
        if self.max_steps == -1 and self.num_train_epochs <= 0:
            raise ValueError(f"num_train_epochs must be > 0 when max_steps is -1, "
                             f"got {self.num_train_epochs}")


def trainer_arguments(fields: TrainingFields) -> dict[str, Any]:
    """Return the TrainingArguments keywords for ``fields``."""
    return {
        "output_dir": str(fields.output_dir),
        "learning_rate": fields.learning_rate,
        "num_train_epochs": fields.num_train_epochs,
        "max_steps": fields.max_steps,
        "per_device_train_batch_size": fields.per_device_train_batch_size,
        "gradient_accumulation_steps": fields.gradient_accumulation_steps,
        "logging_steps": fields.logging_steps,
        "eval_strategy": "steps" if fields.eval_file is not None else "no",
        "eval_steps": fields.eval_steps,
        "save_strategy": "steps",
        "save_steps": fields.save_steps,
        "save_total_limit": fields.save_total_limit,
        "seed": fields.seed,
        "data_seed": fields.seed,
        "bf16": fields.mixed_precision == "bf16",
        "fp16": fields.mixed_precision == "fp16",
        "use_cpu": fields.use_cpu,
        "gradient_checkpointing": fields.gradient_checkpointing,
        "report_to": list(fields.report_to),
        "disable_tqdm": not fields.progress_bar,
    }


def resume_checkpoint(fields: TrainingFields) -> Path | None:
    """Return the checkpoint to resume from, or None when ``resume`` is off.

    Raises ConfigError when ``resume`` is on but ``output_dir`` contains no checkpoint, so
    a typo in output_dir does not silently start a new run.
    """
    if not fields.resume:
        return None
    checkpoint = last_checkpoint(fields.output_dir)
    if checkpoint is None:
        raise ConfigError(
            f"resume is set but {fields.output_dir} contains no {CHECKPOINT_PREFIX}N folder; "
            f"check output_dir or drop --resume to start a new run"
        )
    logger.info("Resuming from %s", checkpoint)
    return checkpoint


def last_checkpoint(output_dir: Path) -> Path | None:
    """Return the ``checkpoint-N`` folder with the highest N that has a trainer state."""
    candidates = []
    for path in Path(output_dir).glob(f"{CHECKPOINT_PREFIX}*"):
        suffix = path.name[len(CHECKPOINT_PREFIX):]
        if suffix.isdigit() and (path / "trainer_state.json").is_file():
            candidates.append((int(suffix), path))
    return max(candidates)[1] if candidates else None


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as indented JSON; NaN becomes null, so strict JSON readers accept it."""
    Path(path).write_text(json.dumps(_finite(data), indent=2) + "\n", encoding="utf-8")


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value
