"""The vision-language path of the trainer: loading a VLM with its processor, LoRA on the
language model only, and datasets whose records carry an ``image`` path.

A model folder is a vision-language model when its ``config.json`` has a
``vision_config`` (LLaVA, Idefics3/SmolVLM, Qwen2-VL, Phi-4-multimodal and most others).
TRL 1.16 treats a run as vision-language when ``processing_class`` is a
``ProcessorMixin`` and the dataset has an ``images`` (list of PIL images) or ``image``
column. Its SFT collator and GRPO trainer insert one ``{"type": "image"}`` part before
the text of the first user message for each image, so the records keep plain string
messages and :func:`attach_images` only replaces the ``image`` path by ``images``.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from policy_trainer.errors import ConfigError, DataError
from policy_trainer.models import (
    ChatTemplateChoice,
    LoraFields,
    add_tag_tokens,
    build_lora_config,
    select_chat_template,
    untie_output_layer,
)

if TYPE_CHECKING:
    from datasets import Dataset
    from peft import LoraConfig
    from PIL import Image
    from transformers import PreTrainedModel, ProcessorMixin

logger = logging.getLogger(__name__)

# Longer side, in pixels, that images are shrunk to when loaded. The processor resizes
# them again, so this only bounds the memory of the image column.
DEFAULT_IMAGE_MAX_SIDE = 1024


def is_vision_language_model(model_dir: Path) -> bool:
    """Return True when the model config of ``model_dir`` declares a vision tower."""
    config_path = Path(model_dir) / "config.json"
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise ConfigError(f"cannot read the model config {config_path}: {error}") from error
    return "vision_config" in config


def vision_chat_template() -> str:
    """Return the packaged ChatML template that also renders image and text parts."""
    from importlib import resources

    return resources.files("policy_trainer").joinpath("data/vision_chat_template.jinja").read_text(
        encoding="utf-8"
    )


def load_processor(
    model_dir: Path, *, chat_template: ChatTemplateChoice = "chatml"
) -> ProcessorMixin:
    """Load the processor of a vision-language model with a pad token and chat template."""
    from transformers import AutoProcessor, ProcessorMixin

    processor = AutoProcessor.from_pretrained(model_dir)
    if not isinstance(processor, ProcessorMixin):
        raise ConfigError(
            f"{model_dir} has a vision_config but no processor (processor_config.json); "
            "save the model's processor next to it with processor.save_pretrained"
        )
    template = select_chat_template(
        processor.tokenizer,
        chat_template,
        vision_chat_template(),
        current=processor.chat_template,
        source=f"the processor of {model_dir}",
    )
    if template is not None:
        processor.chat_template = template
    return processor


def load_vision_language_model(model_dir: Path) -> PreTrainedModel:
    """Load an image-text-to-text model from a local folder in float32, like the text path."""
    import torch
    from transformers import AutoModelForImageTextToText

    return AutoModelForImageTextToText.from_pretrained(model_dir, dtype=torch.float32)


def load_vision_policy(
    model_dir: Path, *, chat_template: ChatTemplateChoice = "chatml", train_lm_head: bool = True,
    padding_side: str = "right",
) -> tuple[PreTrainedModel, ProcessorMixin, list[int]]:
    """Load a VLM and its processor, add the tag tokens and return ``(model, processor, tag ids)``.

    The tags go into the processor's tokenizer and the text embeddings are resized, as
    :func:`models.add_tag_tokens` does for a text model.
    """
    processor = load_processor(model_dir, chat_template=chat_template)
    processor.tokenizer.padding_side = padding_side
    model = load_vision_language_model(model_dir)
    if train_lm_head:
        untie_output_layer(model)
    tag_ids = add_tag_tokens(model, processor.tokenizer)
    return model, processor, tag_ids


def language_model_prefix(model: PreTrainedModel) -> str:
    """Return the module path of the text decoder inside a vision-language model."""
    decoder = model.get_decoder()
    for name, module in model.named_modules():
        if module is decoder:
            return name
    raise ConfigError(f"{type(model).__name__} does not expose its text decoder")


def language_model_lora_targets(model: PreTrainedModel, target_modules: str | list[str]) -> str:
    """Return a PEFT regex that selects ``target_modules`` inside the text decoder only.

    ``all-linear`` becomes every linear layer of the decoder. The vision tower and the
    projector stay frozen: LoRA adapts the language model, as in the SFT warm-up.
    """
    import torch

    prefix = language_model_prefix(model)
    requested = [target_modules] if isinstance(target_modules, str) else list(target_modules)
    if "all-linear" in requested:
        names = {
            name.rsplit(".", 1)[-1]
            for name, module in model.named_modules()
            if name.startswith(prefix + ".") and isinstance(module, torch.nn.Linear)
        }
    else:
        names = set(requested)
    if not names:
        raise ConfigError(f"lora_target_modules {target_modules!r} selects no layer of {prefix}")
    alternatives = "|".join(re.escape(name) for name in sorted(names))
    return rf"{re.escape(prefix)}\..*\.({alternatives})"


def build_vision_lora_config(
    fields: LoraFields, tag_token_ids: list[int], model: PreTrainedModel
) -> LoraConfig:
    """Build the LoRA config of :func:`models.build_lora_config` restricted to the decoder."""
    config = build_lora_config(fields, tag_token_ids)
    config.target_modules = language_model_lora_targets(model, fields.lora_target_modules)
    return config


def load_image_dataset_rows(
    path: Path,
    to_rows: Callable[[list[dict[str, Any]]], list[dict[str, Any]]],
    *,
    max_side: int | None = DEFAULT_IMAGE_MAX_SIDE,
    allow_mixed: bool = True,
) -> Dataset:
    """Build the rows of :func:`chat_data.load_dataset_rows` plus an ``images`` column.

    ``to_rows`` must return one row per record, in order (``sft_rows`` and ``prompt_rows``
    do), so that each row gets the image of its record. With ``allow_mixed=False`` a file
    where only some records name an image raises DataError.
    """
    from datasets import Dataset

    from policy_trainer.chat_data import read_records

    records = read_records(path)
    with_image = sum(1 for record in records if record.get("image"))
    if not allow_mixed and 0 < with_image < len(records):
        raise DataError(
            f"{path}: {with_image} of {len(records)} records name an image; GRPO with a "
            "vision-language model needs an image on every record or on none, because "
            "TRL 1.16's GRPOTrainer fails on batches mixing both. Drop the records "
            "without an image or train a text-only model on them"
        )
    rows = to_rows(records)
    if len(rows) != len(records):
        raise ValueError(f"to_rows returned {len(rows)} rows for {len(records)} records")
    for row, record in zip(rows, records, strict=True):
        row["image"] = record.get("image")
    dataset = Dataset.from_list(rows)
    return attach_images(dataset, base_dir=Path(path).parent, max_side=max_side, source=str(path))


def load_image_prompt_rows(
    path: Path,
    to_rows: Callable[[list[dict[str, Any]]], list[dict[str, Any]]],
    *,
    max_side: int | None = DEFAULT_IMAGE_MAX_SIDE,
) -> Dataset:
    """Build GRPO prompt rows with images, where every record or none must name an image."""
    return load_image_dataset_rows(path, to_rows, max_side=max_side, allow_mixed=False)


def attach_images(
    dataset: Dataset, *, base_dir: Path, max_side: int | None = DEFAULT_IMAGE_MAX_SIDE,
    source: str = "dataset",
) -> Dataset:
    """Replace the ``image`` path column by an ``images`` column of 8-bit RGB images.

    Relative paths resolve against ``base_dir`` (the folder of the JSONL file). A record
    without an image gets an empty list, which TRL renders as a text-only prompt. Each
    file is decoded once, however many questions share it.
    """
    from datasets import Image as ImageFeature
    from datasets import List

    from policy_trainer.images import load_image

    cache: dict[Path, Image.Image] = {}

    def load_row_images(row: dict[str, Any], index: int) -> dict[str, Any]:
        raw_path = row.get("image")
        if not raw_path:
            return {"images": []}
        path = Path(raw_path).expanduser()
        if not path.is_absolute():
            path = Path(base_dir) / path
        if path not in cache:
            try:
                cache[path] = load_image(path, max_side=max_side)
            except DataError as error:
                raise DataError(f"{source} record {index + 1}: {error}") from error
        return {"images": [cache[path]]}

    features = dataset.features.copy()
    if "image" in features:
        del features["image"]
    features["images"] = List(ImageFeature())
    removed = ["image"] if "image" in dataset.column_names else []
    with_images = dataset.map(
        load_row_images, with_indices=True, remove_columns=removed, features=features
    )
    logger.info(
        "%s: loaded %d distinct images for %d records", source, len(cache), len(with_images)
    )
    return with_images


def generate_greedy_with_images(
    model_dir: Path,
    prompts: Sequence[list[dict[str, Any]]],
    images: Sequence[list[Image.Image]],
    *,
    chat_template: ChatTemplateChoice = "chatml",
    max_new_tokens: int = 256,
    batch_size: int = 8,
    device: str = "cpu",
) -> list[str]:
    """Return one greedy completion per conversational prompt and its list of images.

    The vision counterpart of the text generation in ``evaluate``. The image placeholders
    go before the text of the first user message, where TRL puts them in training.
    """
    import torch
    from trl.data_utils import prepare_multimodal_messages

    if len(prompts) != len(images):
        raise ValueError(f"got {len(prompts)} prompts but {len(images)} image lists")
    processor = load_processor(model_dir, chat_template=chat_template)
    processor.tokenizer.padding_side = "left"
    # Any, because the transformers annotations of to() and generate() confuse mypy.
    model: Any = load_vision_language_model(model_dir)
    model = model.to(device).eval()

    completions: list[str] = []
    for start in range(0, len(prompts), batch_size):
        batch_images = [list(row) for row in images[start:start + batch_size]]
        texts = [
            processor.apply_chat_template(
                prepare_multimodal_messages(prompt, images=row_images),
                add_generation_prompt=True,
            )
            for prompt, row_images in zip(prompts[start:start + batch_size], batch_images,
                                          strict=True)
        ]
        has_images = any(batch_images)
        encoded = processor(
            images=batch_images if has_images else None, text=texts, padding=True,
            return_tensors="pt",
        ).to(device)
        with torch.inference_mode():
            output = model.generate(
                **encoded, do_sample=False, max_new_tokens=max_new_tokens,
                pad_token_id=processor.tokenizer.pad_token_id,
            )
        new_tokens = output[:, encoded["input_ids"].shape[1]:]
        completions.extend(processor.batch_decode(new_tokens, skip_special_tokens=True))
    return completions
