"""GRPO with knowledge-graph rewards fetched from the kg_reward service over HTTP.

    policy-trainer grpo --config policy_trainer/configs/cpu_smollm2_grpo.yaml
    accelerate launch --num_processes 4 -m policy_trainer.cli grpo --config F  # several GPUs

Steps: load the SFT model (``model_path`` = an SFT run's ``final/``) and put new LoRA
adapters on it; read prompts and references from the chat JSONL; build one TRL reward
function per component (answer, entity, relation) that share one ``POST /score`` per
batch; train with TRL's GRPOTrainer (G completions per prompt, group-normalized
advantages, KL penalty ``beta`` to the adapter-free model); write ``completions.jsonl``,
``log_history.json``, checkpoints and the merged ``final/``.

What happens when the reward service fails: the client retries with backoff, then gives
``None`` for the items it could not score. TRL 1.16 turns ``None`` into NaN
(``trl/trainer/grpo_trainer.py``, ``_calculate_rewards``, line 1630). A completion with
NaN for every component is "unscorable" (line 2759): it is left out of its group's mean
and std (``nanmean``/``nanstd``, lines 2763-2777) and its advantage is set to 0 (line
2810), so it adds no policy-gradient term. A group whose completions are all unscorable
thus gets zero advantages. The KL penalty still applies to those tokens, so for a batch
without any reward ``SkipUnscorableUpdates`` drops the whole weight update. Each step
with unscorable completions logs a WARNING naming the step.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from policy_trainer import models, vision
from policy_trainer.chat_data import load_dataset_rows, prompt_rows
from policy_trainer.config import dump_config
from policy_trainer.errors import ConfigError
from policy_trainer.training import (
    TrainingFields,
    last_checkpoint,
    resume_checkpoint,
    trainer_arguments,
    write_json,
)

logger = logging.getLogger(__name__)

COMPONENTS = ("answer", "entity", "relation")


@dataclass
class RewardServiceFields:
    """Reward service addresses, reward weights and client retry settings."""

    reward_urls: list[str] = field(
        default_factory=lambda: ["http://127.0.0.1:8000"],
        metadata={"help": "Base URLs of the kg_reward replicas; batches are spread over them."},
    )
    reward_weights: list[float] = field(
        default_factory=lambda: [1.0, 0.5, 0.5],
        metadata={"help": "Weights of the answer, entity and relation rewards in the total "
                          "R = w1*R_ans + w2*R_ent + w3*R_rel."},
    )
    reward_options: dict[str, Any] = field(
        default_factory=dict,
        metadata={"help": "ScoreOptions sent with every request, e.g. {preset: chexpo} or "
                          "{metric: f1}; empty uses the service's defaults."},
    )
    reward_connect_timeout: float = field(
        default=5.0, metadata={"help": "Seconds to open a connection to a replica."}
    )
    reward_read_timeout: float = field(
        default=60.0, metadata={"help": "Seconds to wait for the response to one request."}
    )
    reward_max_attempts: int = field(
        default=4, metadata={"help": "Requests per batch chunk, all replicas together, "
                                     "before its items get no reward."},
    )
    reward_backoff_initial: float = field(
        default=0.5, metadata={"help": "Seconds of the first retry wait; it doubles each round."}
    )
    reward_backoff_max: float = field(
        default=8.0, metadata={"help": "Maximum seconds of one retry wait."}
    )

    def check_rewards(self) -> None:
        """Raise ValueError for reward settings the service or TRL would reject."""
        from pydantic import ValidationError

        from kg_schema.scoring import ScoreOptions

        if not self.reward_urls:
            raise ValueError("reward_urls is empty; give at least one URL such as "
                             "http://127.0.0.1:8000")
        bad_urls = [url for url in self.reward_urls if not url.startswith(("http://", "https://"))]
        if bad_urls:
            raise ValueError(f"reward_urls must start with http:// or https://, got {bad_urls}")
        if len(self.reward_weights) != len(COMPONENTS):
            raise ValueError(f"reward_weights needs {len(COMPONENTS)} values for {COMPONENTS}, "
                             f"got {self.reward_weights}")
        if any(weight < 0 for weight in self.reward_weights):
            raise ValueError(f"reward_weights must be >= 0, got {self.reward_weights}")
        try:
            ScoreOptions(**self.reward_options)
        except ValidationError as error:
            first = error.errors()[0]
            raise ValueError(f"reward_options: {first['loc']}: {first['msg']}") from None
        if self.reward_max_attempts < 1:
            raise ValueError(f"reward_max_attempts must be >= 1, got {self.reward_max_attempts}")
        if min(self.reward_connect_timeout, self.reward_read_timeout) <= 0:
            raise ValueError("reward_connect_timeout and reward_read_timeout must be > 0")


@dataclass
class GRPOStageConfig(models.ModelFields, models.LoraFields, RewardServiceFields, TrainingFields):
    """Settings of ``policy-trainer grpo``; the defaults follow CheXPO-v2."""

    output_dir: Path = field(
        default=Path("runs/grpo"), metadata={"help": "Folder of checkpoints, logs and final/."}
    )
    train_lm_head: bool = field(
        default=False,
        metadata={"help": "Also train the full lm_head and the tag embeddings (SFT does)."},
    )
    num_generations: int = field(
        default=8, metadata={"help": "Completions sampled per prompt (the group size G)."}
    )
    per_device_train_batch_size: int = field(
        default=8,
        metadata={"help": "Completions per device and forward pass; times the number of "
                          "devices and gradient_accumulation_steps it must be a multiple "
                          "of num_generations."},
    )
    beta: float = field(
        default=0.5, metadata={"help": "Weight of the KL penalty to the reference model."}
    )
    epsilon: float = field(
        default=0.2, metadata={"help": "Clipping range of the importance ratio, as in PPO."}
    )
    loss_type: Literal["grpo", "dapo", "dr_grpo", "bnpo"] = field(
        default="grpo",
        metadata={"help": "TRL loss normalization; grpo averages each completion over its "
                          "tokens, as the original GRPO."},
    )
    scale_rewards: Literal["group", "batch", "none"] = field(
        default="group",
        metadata={"help": "Divide advantages by the reward std of the group, of the batch, "
                          "or not at all."},
    )
    temperature: float = field(default=1.0, metadata={"help": "Sampling temperature."})
    top_p: float = field(default=1.0, metadata={"help": "Nucleus sampling probability mass."})
    max_completion_length: int = field(
        default=256, metadata={"help": "Tokens generated per completion at most."}
    )
    log_completions: bool = field(
        default=False,
        metadata={"help": "TRL's own completion table (printed, and parquet files under "
                          "output_dir/completions/); completions.jsonl is written regardless."},
    )
    use_vllm: bool = field(
        default=False, metadata={"help": "Generate with vLLM (GPU only; vllm must be installed)."}
    )
    vllm_mode: Literal["colocate", "server"] = field(
        default="colocate",
        metadata={"help": "colocate: vLLM shares the training GPUs; server: a separate "
                          "'trl vllm-serve' process."},
    )
    vllm_server_base_url: str | None = field(
        default=None, metadata={"help": "URL of 'trl vllm-serve' when vllm_mode is server."}
    )
    vllm_gpu_memory_utilization: float = field(
        default=0.3, metadata={"help": "GPU memory fraction vLLM takes in colocate mode."}
    )
    vllm_tensor_parallel_size: int = field(
        default=1, metadata={"help": "GPUs one vLLM engine spans in colocate mode."}
    )

    def __post_init__(self) -> None:
        self.check_training()
        self.check_lora()
        self.check_rewards()
        if self.num_generations < 2:
            raise ValueError(f"num_generations must be >= 2 to form a group baseline, "
                             f"got {self.num_generations}")
        if self.beta < 0 or self.epsilon <= 0:
            raise ValueError(f"beta must be >= 0 and epsilon > 0, got {self.beta}, {self.epsilon}")
        if self.max_completion_length < 1:
            raise ValueError(f"max_completion_length must be >= 1, "
                             f"got {self.max_completion_length}")
        if self.use_vllm and self.vllm_mode == "server" and not self.vllm_server_base_url:
            raise ValueError("vllm_mode server needs vllm_server_base_url, "
                             "such as http://127.0.0.1:8001")


def build_grpo_arguments(config: GRPOStageConfig) -> Any:
    """Map the stage config onto TRL's GRPOConfig; TRL's own checks become ConfigError."""
    from trl import GRPOConfig

    vllm: dict[str, Any] = {}
    if config.use_vllm:
        vllm = {
            "vllm_mode": config.vllm_mode,
            "vllm_server_base_url": config.vllm_server_base_url,
            "vllm_gpu_memory_utilization": config.vllm_gpu_memory_utilization,
            "vllm_tensor_parallel_size": config.vllm_tensor_parallel_size,
        }
    try:
        return GRPOConfig(
            **trainer_arguments(config),
            num_generations=config.num_generations,
            beta=config.beta,
            epsilon=config.epsilon,
            loss_type=config.loss_type,
            scale_rewards=config.scale_rewards,
            reward_weights=list(config.reward_weights),
            temperature=config.temperature,
            top_p=config.top_p,
            max_completion_length=config.max_completion_length,
            log_completions=config.log_completions,
            use_vllm=config.use_vllm,
            **vllm,
        )
    except ValueError as error:
        raise ConfigError(f"invalid GRPO settings: {error}") from error


def build_reward_functions(config: RewardServiceFields) -> list[Any]:
    """Build the answer, entity and relation reward functions over one shared client."""
    from kg_reward.client import ClientSettings, RewardClient
    from kg_reward.integrations.trl import make_reward_functions
    from kg_schema.scoring import ScoreOptions

    settings = ClientSettings(
        urls=list(config.reward_urls),
        connect_timeout=config.reward_connect_timeout,
        read_timeout=config.reward_read_timeout,
        max_attempts=config.reward_max_attempts,
        backoff_initial=config.reward_backoff_initial,
        backoff_max=config.reward_backoff_max,
    )
    options = ScoreOptions(**config.reward_options) if config.reward_options else None
    # The sync client keeps the HTTP calls in the training thread; the three functions
    # still share one request per batch.
    return make_reward_functions(
        RewardClient.from_settings(settings), options=options, components=COMPONENTS
    )


def make_trainer_class() -> type:
    """Return the GRPOTrainer subclass that logs completions and unscorable steps.

    Built in a function so that importing this module does not import TRL.
    """
    from accelerate.utils import gather_object
    from trl import GRPOTrainer

    from kg_reward.integrations.trl import completion_text
    from policy_trainer.callbacks import CompletionLog, completion_rows

    class KGRewardGRPOTrainer(GRPOTrainer):  # type: ignore[misc]
        """GRPOTrainer that writes completions.jsonl and warns about missing rewards."""

        def __init__(self, *args: Any, completion_log: CompletionLog, **kwargs: Any):
            super().__init__(*args, **kwargs)
            self.completion_log = completion_log
            self.batch_is_unscorable = False

        # Overrides a private method of TRL 1.16 (grpo_trainer.py, line 1579) because it
        # is the one place with the prompts, the completions and every reward component
        # before TRL reduces them to advantages.
        def _calculate_rewards(self, inputs: list[dict[str, Any]], prompts: list[Any],
                               completions: list[Any], completion_ids_list: list[Any]) -> Any:
            import torch

            rewards_per_func = super()._calculate_rewards(
                inputs, prompts, completions, completion_ids_list
            )
            step = self.state.global_step + 1
            unscorable = torch.isnan(rewards_per_func).all(dim=1)
            self.batch_is_unscorable = bool(unscorable.all())
            if unscorable.any():
                logger.warning(
                    "Step %d: %d of %d completions got no reward from the reward service; "
                    "their advantage is 0%s", step, int(unscorable.sum()), len(unscorable),
                    " and the step makes no update" if self.batch_is_unscorable else "",
                )

            ids = gather_object([row.get("id") for row in inputs])
            prompt_texts = gather_object([_prompt_text(prompt) for prompt in prompts])
            completion_texts = gather_object([completion_text(text) for text in completions])
            if self.accelerator.is_main_process:
                self.completion_log.append(completion_rows(
                    step, ids, prompt_texts, completion_texts,
                    rewards_per_func.tolist(), self.reward_func_names,
                    self.reward_weights.tolist(),
                ))
            return rewards_per_func

    return KGRewardGRPOTrainer


def _prompt_text(prompt: str | Sequence[dict[str, Any]]) -> str:
    """Return the last user message of a conversational prompt, or the prompt string."""
    if isinstance(prompt, str):
        return prompt
    users = [message for message in prompt if message.get("role") == "user"]
    content = users[-1]["content"] if users else ""
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if part.get("type") == "text")
    return str(content)


def run_grpo(config: GRPOStageConfig, callbacks: Sequence[Any] = ()) -> Path:
    """Run the GRPO stage and return the merged model folder ``<output_dir>/final``.

    ``callbacks`` are extra ``transformers.TrainerCallback`` objects for the trainer.
    """
    from policy_trainer.callbacks import CompletionLog, SaveLogHistory, SkipUnscorableUpdates

    started = time.perf_counter()
    config.output_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = resume_checkpoint(config)
    dump_config(config, config.output_dir / "config.yaml")

    # 1. Policy: the SFT model with fresh adapters; the adapter-free model is the reference.
    model_dir = models.resolve_model_path(config.model_path, config.model_cache_dir)
    is_vlm = vision.is_vision_language_model(model_dir)
    tokenizer: Any  # a tokenizer, or a processor for a vision-language model
    if is_vlm:
        # The processor takes the tokenizer's place; it also turns images into pixels.
        model, tokenizer, tag_ids = vision.load_vision_policy(
            model_dir, chat_template=config.chat_template,
            train_lm_head=config.train_lm_head, padding_side="left",
        )
    else:
        model, tokenizer, tag_ids = models.load_text_policy(
            model_dir, chat_template=config.chat_template,
            train_lm_head=config.train_lm_head, padding_side="left",
        )

    # 2. Prompts with their reference rationale and answer as extra dataset columns,
    #    which TRL hands to the reward functions.
    assert config.train_file is not None  # checked in __post_init__
    load_rows = vision.load_image_prompt_rows if is_vlm else load_dataset_rows
    train_dataset = load_rows(config.train_file, prompt_rows)
    eval_dataset = load_rows(config.eval_file, prompt_rows) if config.eval_file else None

    # 3. Trainer, with completions.jsonl continued from the checkpoint on resume.
    completion_log = CompletionLog(config.output_dir / "completions.jsonl")
    if checkpoint is not None:
        completion_log.truncate_after(int(checkpoint.name.split("-")[-1]))
    elif completion_log.path.exists():
        completion_log.path.unlink()
    trainer_class = make_trainer_class()
    trainer = trainer_class(
        model=model,
        reward_funcs=build_reward_functions(config),
        args=build_grpo_arguments(config),
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        peft_config=(
            vision.build_vision_lora_config(config, tag_ids, model)
            if is_vlm
            else models.build_lora_config(config, tag_ids)
        ),
        completion_log=completion_log,
    )
    trainer.add_callback(SaveLogHistory())
    trainer.add_callback(SkipUnscorableUpdates(lambda: trainer.batch_is_unscorable))
    for callback in callbacks:
        trainer.add_callback(callback)

    # 4. Train, then merge and save on the main process.
    result = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    final_dir = config.output_dir / "final"
    if trainer.accelerator.is_main_process:
        models.save_merged(trainer.accelerator.unwrap_model(trainer.model), tokenizer, final_dir)
        metrics = dict(result.metrics)
        metrics["wall_seconds"] = round(time.perf_counter() - started, 2)
        metrics["last_checkpoint"] = str(last_checkpoint(config.output_dir))
        write_json(config.output_dir / "metrics.json", metrics)
        logger.info("GRPO finished after %d steps; model saved to %s",
                    trainer.state.global_step, final_dir)
    trainer.accelerator.wait_for_everyone()
    return final_dir
