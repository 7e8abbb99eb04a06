"""Tests of the vision-language path: the tiny LLaVA, image datasets and SFT/GRPO on images.

The training tests run the real ``run_sft`` and ``run_grpo`` stages on records whose
images are the chest radiograph ``RG1_UNCI.dcm`` (DICOM, from pydicom-data) and a PNG,
with rewards from a real kg_reward server on 127.0.0.1. HF_HUB_OFFLINE=1 is set by
tests/policy_trainer/conftest.py.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image
from pydicom.data import get_testdata_file

from policy_trainer import vision
from policy_trainer.chat_data import prompt_rows, sft_rows
from policy_trainer.errors import DataError
from policy_trainer.models import TAG_TOKENS, LoraFields
from policy_trainer.tiny_vision import IMAGE_SIZE, PATCH_SIZE, build_tiny_llava

RECORDS = Path(__file__).parent / "data" / "chat_records.jsonl"
IMAGE_TOKENS_PER_IMAGE = (IMAGE_SIZE // PATCH_SIZE) ** 2


@pytest.fixture(scope="module")
def tiny_llava(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_llava(tmp_path_factory.mktemp("tiny_llava"))


# Reference rationales that name many findings, so that even the random tiny policy hits
# some of them by chance and the rewards of a group differ, which GRPO needs to update.
RATIONALE = (
    "Findings include pneumonia, a nodule, an opacity, an effusion, atelectasis, edema, "
    "consolidation and infection in the lung, with a calcified granuloma near the heart."
)
QUESTIONS = (
    ("Is there a pleural effusion?", "yes"),
    ("Is there a pneumothorax?", "no"),
    ("Is there a nodule in the lung?", "yes"),
    ("Is the heart enlarged?", "no"),
)


@pytest.fixture(scope="module")
def image_records(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Write chat records whose images alternate between the DICOM radiograph and a PNG."""
    folder = tmp_path_factory.mktemp("image_records")
    radiograph = get_testdata_file("RG1_UNCI.dcm", download=False)
    assert radiograph is not None, "pydicom-data (dev extra) provides RG1_UNCI.dcm"
    shutil.copy(str(radiograph), folder / "RG1_UNCI.dcm")
    Image.new("RGB", (96, 80), (70, 70, 70)).save(folder / "lateral.png")

    lines = []
    for index, (question, answer) in enumerate(QUESTIONS):
        record = {
            "id": f"vqa-{index}",
            "question": question,
            "answer": answer,
            "rationale": RATIONALE,
            "image": "RG1_UNCI.dcm" if index % 2 == 0 else "lateral.png",
            "messages": [
                {"role": "user", "content": question},
                {"role": "assistant",
                 "content": f"<think>{RATIONALE}</think><answer>{answer}</answer>"},
            ],
        }
        lines.append(json.dumps(record) + "\n")
    path = folder / "train.jsonl"
    path.write_text("".join(lines), encoding="utf-8")
    return path


def load_model_and_processor(model_dir: Path) -> tuple[Any, Any]:
    from transformers import AutoModelForImageTextToText, AutoProcessor

    return (
        AutoModelForImageTextToText.from_pretrained(model_dir),
        AutoProcessor.from_pretrained(model_dir),
    )


def user_turn(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}]


# --- the tiny LLaVA -------------------------------------------------------------------


def test_build_tiny_llava_loads_offline(tiny_llava: Path) -> None:
    from transformers import LlavaForConditionalGeneration, LlavaProcessor

    model, processor = load_model_and_processor(tiny_llava)

    assert isinstance(model, LlavaForConditionalGeneration)
    assert isinstance(processor, LlavaProcessor)
    assert model.config.image_token_id == processor.image_token_id
    assert model.num_parameters() < 200_000


def test_tiny_llava_chat_template_places_image_token(tiny_llava: Path) -> None:
    _, processor = load_model_and_processor(tiny_llava)

    text = processor.apply_chat_template(user_turn("Is there an effusion?"),
                                         add_generation_prompt=True)

    assert text == (
        "<|im_start|>user\n<image>Is there an effusion?<|im_end|>\n<|im_start|>assistant\n"
    )


def test_tiny_llava_generates_from_dicom(tiny_llava: Path, image_records: Path) -> None:
    from policy_trainer.images import load_image

    model, processor = load_model_and_processor(tiny_llava)
    image = load_image(image_records.parent / "RG1_UNCI.dcm", max_side=256)
    prompt = processor.apply_chat_template(user_turn("Is there an effusion?"),
                                           add_generation_prompt=True)
    inputs = processor(images=[image], text=[prompt], return_tensors="pt")

    output = model.generate(**inputs, max_new_tokens=6, do_sample=False)

    assert inputs["pixel_values"].shape == (1, 3, IMAGE_SIZE, IMAGE_SIZE)
    image_positions = inputs["input_ids"][0] == processor.image_token_id
    assert int(image_positions.sum()) == IMAGE_TOKENS_PER_IMAGE
    assert output.shape[1] > inputs["input_ids"].shape[1]


def test_generate_greedy_with_images_mixed_batch(tiny_llava: Path, image_records: Path) -> None:
    dataset = vision.load_image_dataset_rows(image_records, prompt_rows, max_side=64)
    prompts = [dataset[0]["prompt"], dataset[1]["prompt"], dataset[1]["prompt"]]
    images = [dataset[0]["images"], dataset[1]["images"], []]

    completions = vision.generate_greedy_with_images(
        tiny_llava, prompts, images, max_new_tokens=5, batch_size=3
    )

    assert len(completions) == 3
    assert all(isinstance(text, str) and text for text in completions)


# --- model detection and LoRA ---------------------------------------------------------


def test_is_vision_language_model_detects_vision_config(
    tiny_llava: Path, tmp_path: Path
) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "qwen2"}))

    assert vision.is_vision_language_model(tiny_llava)
    assert not vision.is_vision_language_model(tmp_path)


def test_load_vision_policy_adds_tag_tokens(tiny_llava: Path) -> None:
    model, processor, tag_ids = vision.load_vision_policy(tiny_llava)

    tokenizer = processor.tokenizer
    assert [tokenizer.convert_ids_to_tokens(tag_id) for tag_id in tag_ids] == list(TAG_TOKENS)
    assert model.get_input_embeddings().num_embeddings == len(tokenizer)
    assert model.get_output_embeddings().weight is not model.get_input_embeddings().weight


def test_vision_lora_targets_language_model_only(tiny_llava: Path) -> None:
    from peft import get_peft_model

    model, _, tag_ids = vision.load_vision_policy(tiny_llava)
    config = vision.build_vision_lora_config(LoraFields(lora_r=4, lora_alpha=8), tag_ids, model)

    peft_model = get_peft_model(model, config)
    adapted = [name for name, _ in peft_model.named_modules() if name.endswith(".lora_A")]

    assert len(adapted) == 14  # 2 layers x (q, k, v, o, gate, up, down)
    assert all(".language_model." in name for name in adapted)
    trainable = [name for name, p in peft_model.named_parameters() if p.requires_grad]
    assert not [name for name in trainable if "vision_tower" in name or "projector" in name]
    assert any("lm_head" in name for name in trainable)


# --- datasets with images -------------------------------------------------------------


def test_load_image_dataset_rows_sft(image_records: Path) -> None:
    dataset = vision.load_image_dataset_rows(image_records, sft_rows, max_side=256)

    assert dataset.column_names == ["messages", "images"]
    radiograph, png = dataset[0]["images"], dataset[1]["images"]
    assert len(radiograph) == 1
    assert radiograph[0].mode == "RGB"
    assert max(radiograph[0].size) == 256
    assert png[0].size == (96, 80)


def test_load_image_dataset_rows_prompts_keep_references(image_records: Path) -> None:
    dataset = vision.load_image_dataset_rows(image_records, prompt_rows, max_side=64)

    row = dataset[0]
    assert row["reference"]
    assert row["prompt"][-1]["role"] == "user"
    assert len(row["images"]) == 1


def test_load_image_dataset_rows_without_image(tmp_path: Path) -> None:
    path = tmp_path / "text.jsonl"
    path.write_text(RECORDS.read_text(encoding="utf-8").splitlines()[0] + "\n")

    dataset = vision.load_image_dataset_rows(path, sft_rows)

    assert dataset[0]["images"] == []


def test_load_image_dataset_rows_missing_image(tmp_path: Path) -> None:
    record = json.loads(RECORDS.read_text(encoding="utf-8").splitlines()[0])
    record["image"] = "absent.dcm"
    path = tmp_path / "train.jsonl"
    path.write_text(json.dumps(record) + "\n")

    with pytest.raises(DataError, match=r"train\.jsonl record 1: .*absent\.dcm not found"):
        vision.load_image_dataset_rows(path, sft_rows)


def write_mixed_records(image_records: Path, path: Path) -> Path:
    """Copy ``image_records`` with the image of the second record removed."""
    records = [json.loads(line) for line in image_records.read_text().splitlines()]
    records[1].pop("image")
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    for name in ("RG1_UNCI.dcm", "lateral.png"):
        shutil.copy(image_records.parent / name, path.parent / name)
    return path


def test_load_image_prompt_rows_rejects_mixed(image_records: Path, tmp_path: Path) -> None:
    path = write_mixed_records(image_records, tmp_path / "mixed.jsonl")

    with pytest.raises(DataError, match=r"3 of 4 records name an image"):
        vision.load_image_prompt_rows(path, prompt_rows)


def test_trl_collator_mixes_text_only_rows(
    tiny_llava: Path, image_records: Path, tmp_path: Path
) -> None:
    from trl.trainer.sft_trainer import DataCollatorForVisionLanguageModeling

    path = write_mixed_records(image_records, tmp_path / "mixed.jsonl")
    processor = vision.load_processor(tiny_llava)
    dataset = vision.load_image_dataset_rows(path, sft_rows, max_side=64)
    collator = DataCollatorForVisionLanguageModeling(processor)

    batch = collator([dataset[0], dataset[1]])

    assert batch["pixel_values"].shape[0] == 1
    image_tokens = (batch["input_ids"] == processor.image_token_id).sum(dim=1)
    assert image_tokens.tolist() == [IMAGE_TOKENS_PER_IMAGE, 0]


def test_trl_collator_builds_pixel_values(tiny_llava: Path, image_records: Path) -> None:
    from trl.trainer.sft_trainer import DataCollatorForVisionLanguageModeling

    processor = vision.load_processor(tiny_llava)
    dataset = vision.load_image_dataset_rows(image_records, sft_rows, max_side=128)
    collator = DataCollatorForVisionLanguageModeling(processor, assistant_only_loss=True)

    batch = collator([dataset[0], dataset[1]])

    assert batch["pixel_values"].shape == (2, 3, IMAGE_SIZE, IMAGE_SIZE)
    image_tokens = (batch["input_ids"] == processor.image_token_id).sum(dim=1)
    assert image_tokens.tolist() == [IMAGE_TOKENS_PER_IMAGE] * 2
    # The loss covers the assistant turn only, never the image placeholders.
    assert not bool((batch["labels"] == processor.image_token_id).any())


# --- SFT and GRPO end to end ----------------------------------------------------------


def split_weights(model_dir: Path) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Return the (language model, vision tower and projector) weights of a saved VLM."""
    from transformers import AutoModelForImageTextToText

    state = AutoModelForImageTextToText.from_pretrained(model_dir).state_dict()
    language = {name: value for name, value in state.items() if ".language_model." in name}
    vision_part = {
        name: value for name, value in state.items()
        if ".vision_tower." in name or ".multi_modal_projector." in name
    }
    return language, vision_part


def changed_names(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor]) -> list[str]:
    return [
        name for name, value in before.items()
        if value.shape != after[name].shape or not torch.equal(value, after[name])
    ]


@pytest.fixture(scope="module")
def sft_vision_run(
    tiny_llava: Path, image_records: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    from policy_trainer.sft import SFTStageConfig, run_sft

    config = SFTStageConfig(
        model_path=str(tiny_llava),
        train_file=image_records,
        output_dir=tmp_path_factory.mktemp("sft_vision"),
        max_steps=2,
        per_device_train_batch_size=2,
        learning_rate=1e-2,  # large, so two steps move the tiny model visibly
        lora_r=4,
        lora_alpha=8,
        max_length=256,
        save_steps=100,
    )
    return run_sft(config)


@pytest.mark.slow
def test_run_sft_vision_trains_language_model(tiny_llava: Path, sft_vision_run: Path) -> None:
    base_language, base_vision = split_weights(tiny_llava)
    tuned_language, tuned_vision = split_weights(sft_vision_run)

    changed = changed_names(base_language, tuned_language)
    assert any("q_proj" in name for name in changed), "merged LoRA left the decoder unchanged"
    assert changed_names(base_vision, tuned_vision) == [], "vision tower must stay frozen"


@pytest.mark.slow
def test_run_sft_vision_saves_processor_with_tags(sft_vision_run: Path) -> None:
    _, processor = load_model_and_processor(sft_vision_run)

    vocabulary = processor.tokenizer.get_vocab()
    assert all(tag in vocabulary for tag in TAG_TOKENS)
    assert processor.image_token == "<image>"


@pytest.mark.slow
def test_run_grpo_vision_with_reward_server(
    sft_vision_run: Path, image_records: Path, reward_server_url: str, tmp_path: Path
) -> None:
    from policy_trainer.grpo import GRPOStageConfig, run_grpo

    config = GRPOStageConfig(
        model_path=str(sft_vision_run),
        train_file=image_records,
        output_dir=tmp_path / "grpo_vision",
        reward_urls=[reward_server_url],
        max_steps=1,
        num_generations=4,
        per_device_train_batch_size=4,
        max_completion_length=32,
        learning_rate=1e-2,
        lora_r=4,
        lora_alpha=8,
        save_steps=100,
        seed=0,
    )
    final_dir = run_grpo(config)

    rows = [json.loads(line) for line in (config.output_dir / "completions.jsonl").open()]
    assert len(rows) == 4
    assert all(row["scored"] for row in rows), "every completion gets a reward"
    assert len({row["reward"] for row in rows}) > 1, f"no reward spread: {rows}"
    before_language, before_vision = split_weights(sft_vision_run)
    after_language, after_vision = split_weights(final_dir)
    changed = changed_names(before_language, after_language)
    assert any("q_proj" in name for name in changed), "GRPO left the decoder unchanged"
    assert changed_names(before_vision, after_vision) == [], "vision tower must stay frozen"


@pytest.mark.slow
def test_evaluate_vision_model_with_images(
    sft_vision_run: Path, image_records: Path, reward_server_url: str, tmp_path: Path
) -> None:
    from policy_trainer.evaluate import EvaluateConfig, run_evaluate

    config = EvaluateConfig(
        model_path=str(sft_vision_run),
        test_file=image_records,
        output_file=tmp_path / "metrics.json",
        reward_urls=[reward_server_url],
        max_new_tokens=8,  # short, because the tiny model's text is noise anyway
        device="cpu",
    )

    metrics = run_evaluate(config)

    assert metrics["n_items"] == len(QUESTIONS)
    assert metrics["n_failed"] == 0
    assert 0.0 <= metrics["answer_accuracy"] <= 1.0
