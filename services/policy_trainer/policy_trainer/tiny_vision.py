"""Build a tiny random LLaVA vision-language model for tests and the CI-scale demo.

The model is a ``LlavaForConditionalGeneration`` with a 2-layer CLIP vision tower and a
2-layer Qwen2 text model (about 80k parameters). Its processor is assembled locally from
a Pillow CLIP image processor with 32-pixel input and the byte-level BPE tokenizer of
``policy_trainer.tiny`` plus ``<image>``. Nothing is downloaded, and the saved folder
loads with ``AutoProcessor`` and ``AutoModelForImageTextToText`` under HF_HUB_OFFLINE=1.

    python -c "from policy_trainer.tiny_vision import build_tiny_llava; build_tiny_llava('tiny')"
"""

from __future__ import annotations

import logging
from pathlib import Path

from policy_trainer.vision import vision_chat_template

logger = logging.getLogger(__name__)

IMAGE_TOKEN = "<image>"
# The ChatML end-of-turn token of the tiny tokenizer, which ends a completion.
TURN_END_TOKEN = "<|im_end|>"

IMAGE_SIZE = 32  # pixels per side after the processor's resize and crop (CLIP ViT-L/14: 224)
PATCH_SIZE = 8  # (32 / 8)^2 = 16 image tokens per image (CLIP ViT-L/14: 14)


def build_tiny_llava(output_dir: str | Path, *, seed: int = 0) -> Path:
    """Build, save and return the folder of a tiny random LLaVA with its processor."""
    import torch
    from transformers import LlavaForConditionalGeneration, LlavaProcessor

    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)

    tokenizer = build_tiny_vision_tokenizer()
    processor = LlavaProcessor(
        image_processor=_build_image_processor(),
        tokenizer=tokenizer,
        patch_size=PATCH_SIZE,
        # "default" drops the CLS token, so the tokens per image are (size / patch)^2.
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,  # the CLS token of the CLIP vision tower
        chat_template=vision_chat_template(),
    )

    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(_build_config(tokenizer))
    model.generation_config.eos_token_id = tokenizer.convert_tokens_to_ids(TURN_END_TOKEN)
    model.generation_config.pad_token_id = tokenizer.pad_token_id

    model.save_pretrained(output_dir)
    processor.save_pretrained(output_dir)
    parameters = sum(parameter.numel() for parameter in model.parameters())
    logger.info("saved a tiny LLaVA with %d parameters to %s", parameters, output_dir)
    return output_dir


def build_tiny_vision_tokenizer():  # type: ignore[no-untyped-def]
    """Return the tiny text model's BPE tokenizer with the ``<image>`` placeholder added."""
    from tokenizers import AddedToken

    from policy_trainer.tiny import build_tiny_tokenizer

    tokenizer = build_tiny_tokenizer()
    # Special, so the processor's placeholder is one id and no BPE merge splits it.
    placeholder = AddedToken(IMAGE_TOKEN, special=True, normalized=False)
    tokenizer.add_tokens([placeholder], special_tokens=True)
    return tokenizer


def _build_image_processor():  # type: ignore[no-untyped-def]
    # The Pillow backend needs no torchvision, which the train extra does not install.
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    return CLIPImageProcessorPil(
        size={"shortest_edge": IMAGE_SIZE},
        crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
    )


def _build_config(tokenizer):  # type: ignore[no-untyped-def]
    from transformers import CLIPVisionConfig, LlavaConfig, Qwen2Config

    vision_config = CLIPVisionConfig(
        hidden_size=32,  # CLIP ViT-L/14 uses 1024
        intermediate_size=64,  # 4096
        num_hidden_layers=2,  # 24
        num_attention_heads=2,  # 16
        image_size=IMAGE_SIZE,
        patch_size=PATCH_SIZE,
    )
    text_config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=32,  # Qwen2-0.5B uses 896
        intermediate_size=64,  # 4864
        num_hidden_layers=2,  # 24
        num_attention_heads=4,  # 14
        num_key_value_heads=2,  # 2
        max_position_embeddings=512,  # 32768; prompts here stay under 200 tokens
        # An untied lm_head matches the SFT setup, where lm_head is trained on its own.
        tie_word_embeddings=False,
        eos_token_id=tokenizer.convert_tokens_to_ids(TURN_END_TOKEN),
        pad_token_id=tokenizer.pad_token_id,
    )
    return LlavaConfig(
        vision_config=vision_config,
        text_config=text_config,
        image_token_id=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
        vision_feature_select_strategy="default",
        # The last layer: the default -2 would leave only one of the two layers in use.
        vision_feature_layer=-1,
    )
