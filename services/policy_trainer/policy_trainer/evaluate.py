"""Evaluation of a policy on a test split, scored by the kg_reward service.

    policy-trainer evaluate --config policy_trainer/configs/cpu_smollm2_evaluate.yaml

Steps: generate one greedy completion per test question; score all of them with
``options.explain=True``; compute answer accuracy, the mean entity and relation rewards,
and micro precision and recall of entity and relation matching from the matched, extra
and missing items of the explanations; write the metrics JSON and one prediction per
line beside it (``<output_file stem>.predictions.jsonl``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from policy_trainer import models, vision
from policy_trainer.chat_data import prompt_rows, read_records
from policy_trainer.grpo import RewardServiceFields
from policy_trainer.training import write_json

logger = logging.getLogger(__name__)


@dataclass
class EvaluateConfig(models.ModelFields, RewardServiceFields):
    """Settings of ``policy-trainer evaluate``."""

    test_file: Path | None = field(
        default=None, metadata={"help": "Chat-format JSONL of the test split (required)."}
    )
    output_file: Path = field(
        default=Path("runs/evaluate/metrics.json"),
        metadata={"help": "Metrics JSON to write; predictions go beside it."},
    )
    max_new_tokens: int = field(
        default=256, metadata={"help": "Tokens generated per question at most."}
    )
    batch_size: int = field(default=8, metadata={"help": "Questions generated at once."})
    limit: int | None = field(
        default=None, metadata={"help": "Evaluate only the first N records; null takes all."}
    )
    device: str = field(
        default="auto", metadata={"help": "Torch device for generation: auto, cpu, cuda, cuda:1."}
    )

    def __post_init__(self) -> None:
        self.check_rewards()
        if self.test_file is None:
            raise ValueError("test_file is required; set it to a chat-format JSONL file")
        if self.max_new_tokens < 1 or self.batch_size < 1:
            raise ValueError(f"max_new_tokens and batch_size must be >= 1, "
                             f"got {self.max_new_tokens} and {self.batch_size}")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit must be >= 1 or null, got {self.limit}")


def run_evaluate(config: EvaluateConfig) -> dict[str, Any]:
    """Evaluate ``config.model_path`` on ``config.test_file`` and return the metrics."""
    started = time.perf_counter()

    # 1. Test prompts and references; a vision-language model also gets each record's image.
    assert config.test_file is not None  # checked in __post_init__
    model_dir = models.resolve_model_path(config.model_path, config.model_cache_dir)
    with_images = vision.is_vision_language_model(model_dir)
    if with_images:
        dataset = vision.load_image_dataset_rows(config.test_file, prompt_rows)
        rows = [dict(row) for row in dataset][: config.limit]
    else:
        rows = prompt_rows(read_records(config.test_file))[: config.limit]

    # 2. Greedy completions.
    prompts = [row["prompt"] for row in rows]
    if with_images:
        completions = vision.generate_greedy_with_images(
            model_dir,
            prompts,
            [row.get("images") or [] for row in rows],
            chat_template=config.chat_template,
            max_new_tokens=config.max_new_tokens,
            batch_size=config.batch_size,
            device=_resolve_device(config.device),
        )
    else:
        completions = generate_greedy(model_dir, prompts, config)

    # 3. Scores with explanations.
    result = score_with_explanations(rows, completions, config)

    # 4. Metrics and predictions.
    metrics = summarize(result, config.reward_weights)
    metrics.update({
        "model_path": str(config.model_path),
        "test_file": str(config.test_file),
        "wall_seconds": round(time.perf_counter() - started, 2),
    })
    config.output_file.parent.mkdir(parents=True, exist_ok=True)
    write_json(config.output_file, metrics)
    _write_predictions(config.output_file, rows, completions, result)
    logger.info("Evaluated %d items (%d failed): answer accuracy %s", metrics["n_items"],
                metrics["n_failed"], metrics["answer_accuracy"])
    return metrics


def generate_greedy(model_dir: Path, prompts: Sequence[list[dict[str, Any]]],
                    config: EvaluateConfig) -> list[str]:
    """Return one greedy completion per conversational prompt."""
    import torch

    device = _resolve_device(config.device)
    tokenizer = models.load_tokenizer(
        model_dir, chat_template=config.chat_template, padding_side="left"
    )
    model: Any = models.load_causal_lm(model_dir)
    model.to(device)
    model.eval()

    completions: list[str] = []
    for start in range(0, len(prompts), config.batch_size):
        batch = prompts[start:start + config.batch_size]
        texts = [
            tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
            for prompt in batch
        ]
        encoded = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        encoded = encoded.to(device)
        with torch.inference_mode():
            output = model.generate(
                **encoded, do_sample=False, max_new_tokens=config.max_new_tokens,
                pad_token_id=tokenizer.pad_token_id,
            )
        new_tokens = output[:, encoded["input_ids"].shape[1]:]
        completions.extend(tokenizer.batch_decode(new_tokens, skip_special_tokens=True))
        logger.info("Generated %d of %d completions", len(completions), len(prompts))
    return completions


def score_with_explanations(rows: Sequence[dict[str, Any]], completions: Sequence[str],
                            config: RewardServiceFields) -> Any:
    """Score every completion against its reference with ``explain=True``."""
    from kg_reward.client import ClientSettings, RewardClient
    from kg_schema.scoring import ScoreOptions

    settings = ClientSettings(
        urls=list(config.reward_urls),
        connect_timeout=config.reward_connect_timeout,
        read_timeout=config.reward_read_timeout,
        max_attempts=config.reward_max_attempts,
        backoff_initial=config.reward_backoff_initial,
        backoff_max=config.reward_backoff_max,
    )
    options = ScoreOptions(**{**config.reward_options, "explain": True})
    items = [
        {"id": row["id"], "completion": completion, "reference": row["reference"],
         "reference_answer": row["reference_answer"]}
        for row, completion in zip(rows, completions, strict=True)
    ]
    with RewardClient.from_settings(settings) as client:
        return client.score(items, options=options)


def summarize(result: Any, weights: Sequence[float]) -> dict[str, Any]:
    """Compute the metrics of a ScoreResult; items without a score count as failed.

    Precision and recall are micro averages over the split: matched / (matched + extra)
    and matched / (matched + missing), summed over all scored items. A metric with an
    empty denominator is null.
    """
    scored = [
        (components, explanation)
        for components, explanation in zip(result.components, result.explanations
                                           or [None] * len(result.components), strict=True)
        if components is not None
    ]
    answers = [c.answer for c, _ in scored if c.answer is not None]
    entities = [c.entity for c, _ in scored if c.entity is not None]
    relations = [c.relation for c, _ in scored if c.relation is not None]
    totals = [
        weights[0] * (c.answer or 0.0) + weights[1] * (c.entity or 0.0)
        + weights[2] * (c.relation or 0.0)
        for c, _ in scored
    ]
    counts = {"entities": [0, 0, 0], "relations": [0, 0, 0]}  # matched, extra, missing
    for _, explanation in scored:
        if explanation is None:
            continue
        for name in counts:
            comparison = getattr(explanation, name)
            counts[name][0] += len(comparison.matched)
            counts[name][1] += len(comparison.extra)
            counts[name][2] += len(comparison.missing)

    entity_counts, relation_counts = counts["entities"], counts["relations"]
    return {
        "n_items": len(result.components),
        "n_failed": len(result.components) - len(scored),
        "answer_accuracy": _mean([1.0 if value == 1.0 else 0.0 for value in answers]),
        "mean_answer_reward": _mean(answers),
        "mean_entity_reward": _mean(entities),
        "mean_relation_reward": _mean(relations),
        "mean_reward": _mean(totals),
        "entity_precision": _ratio(entity_counts[0], entity_counts[0] + entity_counts[1]),
        "entity_recall": _ratio(entity_counts[0], entity_counts[0] + entity_counts[2]),
        "relation_precision": _ratio(relation_counts[0], relation_counts[0] + relation_counts[1]),
        "relation_recall": _ratio(relation_counts[0], relation_counts[0] + relation_counts[2]),
        "entity_counts": dict(zip(("matched", "extra", "missing"), entity_counts, strict=True)),
        "relation_counts": dict(zip(("matched", "extra", "missing"), relation_counts,
                                    strict=True)),
    }


def _resolve_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def _write_predictions(output_file: Path, rows: Sequence[dict[str, Any]],
                       completions: Sequence[str], result: Any) -> None:
    import json

    path = output_file.with_name(f"{output_file.stem}.predictions.jsonl")
    with path.open("w", encoding="utf-8") as file:
        for index, row in enumerate(rows):
            components = result.components[index]
            file.write(json.dumps({
                "id": row["id"],
                "completion": completions[index],
                "reference_answer": row["reference_answer"],
                "reward": result.rewards[index],
                "components": components.model_dump() if components is not None else None,
            }, ensure_ascii=False) + "\n")
