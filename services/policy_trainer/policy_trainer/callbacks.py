"""Trainer callbacks and the completion log of the GRPO stage.

- ``CompletionLog`` appends one JSON line per sampled completion to
  ``<output_dir>/completions.jsonl``, and on resume drops the lines of steps after the
  checkpoint, so a resumed run does not repeat rows.
- ``SaveLogHistory`` writes ``log_history.json`` at every checkpoint and at the end.
- ``SkipUnscorableUpdates`` drops the gradients of an optimizer step whose whole batch got
  no reward, so that step changes no weight.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from policy_trainer.training import write_json

logger = logging.getLogger(__name__)


class CompletionLog:
    """Append-only JSONL file with one row per completion: step, prompt, completion, rewards."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def truncate_after(self, step: int) -> None:
        """Keep only the rows of steps <= ``step``; used when resuming from checkpoint-``step``."""
        if not self.path.is_file():
            return
        kept = [
            line for line in self.path.read_text(encoding="utf-8").splitlines()
            if line.strip() and json.loads(line).get("step", 0) <= step
        ]
        self.path.write_text("".join(f"{line}\n" for line in kept), encoding="utf-8")

    def append(self, rows: Sequence[dict[str, Any]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as file:
            for row in rows:
                file.write(json.dumps(row, ensure_ascii=False) + "\n")


def completion_rows(
    step: int,
    ids: Sequence[Any],
    prompts: Sequence[str],
    completions: Sequence[str],
    rewards_per_function: Sequence[Sequence[float]],
    names: Sequence[str],
    weights: Sequence[float],
) -> list[dict[str, Any]]:
    """Build the rows of one generation batch; NaN rewards (no score) become null.

    ``reward`` is the weighted sum of the components that were scored, as TRL forms it,
    and null when none was.
    """
    rows = []
    for index, values in enumerate(rewards_per_function):
        components = {
            name: (None if math.isnan(value) else value)
            for name, value in zip(names, values, strict=True)
        }
        scored = [(value, weight) for value, weight in zip(components.values(), weights,
                                                            strict=True) if value is not None]
        total = sum(value * weight for value, weight in scored) if scored else None
        rows.append({
            "step": step,
            "id": ids[index],
            "prompt": prompts[index],
            "completion": completions[index],
            "reward": total,
            **components,
            "scored": bool(scored),
        })
    return rows


class SaveLogHistory(TrainerCallback):
    """Write the trainer's log history to ``<output_dir>/log_history.json``."""

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._write(args, state)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._write(args, state)

    @staticmethod
    def _write(args: Any, state: Any) -> None:
        if state.is_world_process_zero:
            write_json(Path(args.output_dir) / "log_history.json", state.log_history)


class SkipUnscorableUpdates(TrainerCallback):
    """Drop all gradients before an optimizer step whose batch got no reward at all.

    TRL sets the advantage of such completions to 0, but the KL term still yields a
    gradient, and AdamW would also keep moving the weights on its momentum. With every
    gradient set to None, ``torch.optim.AdamW`` skips each parameter and leaves its state
    untouched, so the step is a no-op (the learning-rate schedule still advances).

    NOTE: this assumes one generation batch per optimizer step (TRL's default,
    steps_per_generation = gradient_accumulation_steps), and does not work under
    DeepSpeed, whose optimizer keeps its own gradient buffers.
    """

    def __init__(self, batch_is_unscorable: Callable[[], bool]):
        self._batch_is_unscorable = batch_is_unscorable

    def on_pre_optimizer_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not self._batch_is_unscorable():
            return
        model = kwargs["model"]
        for parameter in model.parameters():
            parameter.grad = None
        logger.warning("Step %d: skipped the weight update because no completion of the "
                       "batch got a reward", state.global_step + 1)
