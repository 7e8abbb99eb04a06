"""SFT warm-up: teach the policy the <think>/<answer> format and the domain terms.

    policy-trainer sft --config policy_trainer/configs/cpu_smollm2_sft.yaml

Steps: load the base model and add the four tag tokens; read the chat JSONL; train LoRA
adapters (plus lm_head and the tag embeddings) with TRL's SFTTrainer, with the loss on
the assistant turn only; merge the adapters and save ``<output_dir>/final/`` with
``config.yaml``, ``metrics.json`` and ``log_history.json`` beside it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from policy_trainer import models, vision
from policy_trainer.chat_data import load_dataset_rows, sft_rows
from policy_trainer.config import dump_config
from policy_trainer.training import (
    TrainingFields,
    resume_checkpoint,
    trainer_arguments,
    write_json,
)

logger = logging.getLogger(__name__)


@dataclass
class SFTStageConfig(models.ModelFields, models.LoraFields, TrainingFields):
    """Settings of ``policy-trainer sft``."""

    output_dir: Path = field(
        default=Path("runs/sft"), metadata={"help": "Folder of checkpoints, logs and final/."}
    )
    learning_rate: float = field(
        default=2e-4, metadata={"help": "Peak AdamW learning rate of the adapters and lm_head."}
    )
    num_train_epochs: float = field(
        default=3.0, metadata={"help": "Passes over train_file; ignored when max_steps > 0."}
    )
    per_device_train_batch_size: int = field(
        default=4, metadata={"help": "Conversations per device and forward pass."}
    )
    logging_steps: int = field(default=10, metadata={"help": "Optimizer steps between log lines."})
    save_steps: int = field(
        default=200, metadata={"help": "Optimizer steps between checkpoints in output_dir."}
    )
    max_length: int = field(
        default=1024,
        metadata={"help": "Tokens per conversation; longer ones are truncated at the end."},
    )
    assistant_only_loss: bool = field(
        default=True,
        metadata={"help": "Compute the loss on the assistant turn only (needs a chat template "
                          "with generation markers, as chat_template: chatml has)."},
    )

    def __post_init__(self) -> None:
        self.check_training()
        self.check_lora()
        if self.max_length < 16:
            raise ValueError(f"max_length must be >= 16 tokens, got {self.max_length}")
        if self.assistant_only_loss and self.chat_template != "chatml":
            raise ValueError(
                "assistant_only_loss needs the packaged chat template; set chat_template: "
                "chatml or assistant_only_loss: false"
            )


def run_sft(config: SFTStageConfig) -> Path:
    """Run the SFT stage and return the merged model folder ``<output_dir>/final``."""
    from trl import SFTConfig, SFTTrainer

    started = time.perf_counter()
    config.output_dir.mkdir(parents=True, exist_ok=True)
    dump_config(config, config.output_dir / "config.yaml")
    checkpoint = resume_checkpoint(config)

    # 1. Base model with the tag tokens; untied so that lm_head can train on its own.
    model_dir = models.resolve_model_path(config.model_path, config.model_cache_dir)
    is_vlm = vision.is_vision_language_model(model_dir)
    tokenizer: Any  # a tokenizer, or a processor for a vision-language model
    if is_vlm:
        # The processor takes the tokenizer's place; it also turns images into pixels.
        model, tokenizer, tag_ids = vision.load_vision_policy(
            model_dir, chat_template=config.chat_template, train_lm_head=config.train_lm_head
        )
    else:
        model, tokenizer, tag_ids = models.load_text_policy(
            model_dir, chat_template=config.chat_template, train_lm_head=config.train_lm_head
        )

    # 2. Data: conversational rows, so TRL applies the chat template itself.
    assert config.train_file is not None  # checked in __post_init__
    load_rows = vision.load_image_dataset_rows if is_vlm else load_dataset_rows
    train_dataset = load_rows(config.train_file, sft_rows)
    eval_dataset = load_rows(config.eval_file, sft_rows) if config.eval_file else None

    # 3. Train.
    args = SFTConfig(
        **trainer_arguments(config),
        max_length=config.max_length,
        assistant_only_loss=config.assistant_only_loss,
        packing=False,
        dataset_num_proc=None,
    )
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        peft_config=(
            vision.build_vision_lora_config(config, tag_ids, model)
            if is_vlm
            else models.build_lora_config(config, tag_ids)
        ),
    )
    result = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)

    # 4. Evaluate on every process (it gathers across them), then merge and save on the
    #    main process only.
    metrics: dict[str, Any] = dict(result.metrics)
    if eval_dataset is not None:
        metrics.update(trainer.evaluate())
    final_dir = config.output_dir / "final"
    if trainer.accelerator.is_main_process:
        models.save_merged(trainer.accelerator.unwrap_model(trainer.model), tokenizer, final_dir)
        metrics["wall_seconds"] = round(time.perf_counter() - started, 2)
        write_json(config.output_dir / "metrics.json", metrics)
        write_json(config.output_dir / "log_history.json", trainer.state.log_history)
        logger.info("SFT finished after %d steps; model saved to %s",
                    trainer.state.global_step, final_dir)
    trainer.accelerator.wait_for_everyone()
    return final_dir
