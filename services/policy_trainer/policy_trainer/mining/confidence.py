"""Greedy answers of a causal LM and the confidence of each answer.

Confidence of one generated answer = the mean natural-log probability of its answer
tokens: the generated tokens strictly between the first ``<answer>`` token and the next
``</answer>`` token. The two tag tokens themselves are not counted. When the model opens
``<answer>`` but never closes it, the answer tokens run to the end of the generation
(end-of-sequence and padding excluded). When it writes no ``<answer>`` at all, or an empty
answer, the answer is None and so is the confidence; such items count as wrong.

Probabilities come from the raw logits of each generation step (``output_logits=True``),
log-softmaxed in float32, so logits processors cannot change them.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from policy_trainer.errors import ConfigError

logger = logging.getLogger(__name__)

ANSWER_OPEN = "<answer>"
ANSWER_CLOSE = "</answer>"


@dataclass(frozen=True)
class Generation:
    """The greedy completion of one prompt, its parsed answer and the answer's confidence."""

    completion: str
    answer: str | None
    confidence: float | None
    answer_token_ids: tuple[int, ...]


def load_model(model_path: str | Path, device: str) -> tuple[Any, Any, Any]:
    """Load a causal LM and its tokenizer from a local folder; return (model, tokenizer, device)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(model_path)
    if not (path / "config.json").is_file():
        raise ConfigError(
            f"model_path {path} contains no config.json; set it to the SFT run's final/ folder"
        )
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(str(path), local_files_only=True)
    model.to(torch.device(device))  # type: ignore[arg-type]  # transformers 5 stub of .to
    model.eval()
    return model, tokenizer, torch.device(device)


def tag_token_ids(tokenizer: Any) -> tuple[int, int]:
    """Return the ids of the single ``<answer>`` and ``</answer>`` tokens of the tokenizer."""
    ids = []
    for tag in (ANSWER_OPEN, ANSWER_CLOSE):
        encoded = tokenizer.encode(tag, add_special_tokens=False)
        if len(encoded) != 1:
            raise ConfigError(
                f"the tokenizer splits {tag} into {len(encoded)} tokens; mining needs the tag "
                "tokens that the SFT stage adds, so use the SFT run's final/ folder"
            )
        ids.append(encoded[0])
    return ids[0], ids[1]


def build_prompt(tokenizer: Any, record: dict[str, Any]) -> str:
    """Render the record's chat without the assistant turn, ending with the generation prompt."""
    # NOTE: only text reaches the model, so a vision-language SFT model is mined on the
    # question alone, without the record's image.
    messages = [message for message in record["messages"] if message["role"] != "assistant"]
    if not getattr(tokenizer, "chat_template", None):
        raise ConfigError(
            "the tokenizer has no chat template; use the SFT run's final/ folder, which keeps it"
        )
    prompt: str = tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=True
    )
    return prompt


def generate_answers(
    model: Any, tokenizer: Any, device: Any, records: Sequence[dict[str, Any]], *,
    max_new_tokens: int, batch_size: int,
) -> list[Generation]:
    """Generate greedily for every record and measure the confidence of each answer."""
    import torch

    open_id, close_id = tag_token_ids(tokenizer)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    stop_ids = {tokenizer.eos_token_id, tokenizer.pad_token_id} - {None}

    generations: list[Generation] = []
    for begin in range(0, len(records), batch_size):
        batch = records[begin:begin + batch_size]
        prompts = [build_prompt(tokenizer, record) for record in batch]
        inputs = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        inputs = {name: tensor.to(device) for name, tensor in inputs.items()}
        with torch.no_grad():
            output = model.generate(
                **inputs, do_sample=False, max_new_tokens=max_new_tokens,
                return_dict_in_generate=True, output_logits=True,
                pad_token_id=tokenizer.pad_token_id,
            )
        prompt_length = inputs["input_ids"].shape[1]
        new_tokens = output.sequences[:, prompt_length:].tolist()
        # logits: one (batch, vocab) tensor per step -> (batch, steps, vocab) log-probs.
        log_probs = torch.log_softmax(torch.stack(output.logits, dim=1).float(), dim=-1)
        for row, tokens in enumerate(new_tokens):
            tokens = _until_stop(tokens, stop_ids)
            token_log_probs = [log_probs[row, step, token].item() for step, token in
                               enumerate(tokens)]
            generations.append(_parse(tokenizer, tokens, token_log_probs, open_id, close_id))
        logger.info("generated %d/%d answers", len(generations), len(records))
    return generations


def answer_span(tokens: Sequence[int], open_id: int, close_id: int) -> tuple[int, int] | None:
    """Return [start, end) of the answer tokens inside the first <answer>...</answer>."""
    if open_id not in tokens:
        return None
    start = list(tokens).index(open_id) + 1
    end = next((i for i in range(start, len(tokens)) if tokens[i] == close_id), len(tokens))
    return start, end


def _until_stop(tokens: list[int], stop_ids: set[int]) -> list[int]:
    for position, token in enumerate(tokens):
        if token in stop_ids:
            return tokens[:position]
    return tokens


def _parse(
    tokenizer: Any, tokens: list[int], token_log_probs: list[float], open_id: int, close_id: int
) -> Generation:
    completion = tokenizer.decode(tokens, skip_special_tokens=False)
    span = answer_span(tokens, open_id, close_id)
    if span is None or span[0] == span[1]:
        return Generation(completion, None, None, ())
    start, end = span
    answer = tokenizer.decode(tokens[start:end], skip_special_tokens=True).strip()
    confidence = math.fsum(token_log_probs[start:end]) / (end - start)
    return Generation(completion, answer or None, confidence, tuple(tokens[start:end]))
