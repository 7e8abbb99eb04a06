"""Tiny local causal language models for tests and the CI-scale demo.

``build_tiny_causal_lm(output_dir)`` writes a randomly initialised Qwen2 model of about
60k parameters with a byte-level BPE tokenizer trained on ``data/tiny_corpus.txt`` and
the packaged ChatML chat template. It builds in a few seconds on one CPU core and needs
no download. The model cannot answer questions; it exists so that SFT, GRPO and
evaluation run their real code paths end to end in seconds.
"""

from __future__ import annotations

import logging
from importlib import resources
from pathlib import Path

from policy_trainer.models import packaged_chat_template

logger = logging.getLogger(__name__)

# ChatML control tokens, as SmolLM2-Instruct uses them. The tag tokens are left out on
# purpose: the SFT stage adds them, and tests exercise that path.
SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
TINY_VOCAB_SIZE = 600  # BPE merges on top of the 256 byte symbols; the corpus is small
TINY_SEED = 1234


def build_tiny_causal_lm(output_dir: Path, *, seed: int = TINY_SEED) -> Path:
    """Write a tiny Qwen2ForCausalLM with tokenizer and chat template to ``output_dir``."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tiny_tokenizer()

    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=64,  # Qwen2-0.5B: 896
        intermediate_size=128,  # 4864
        num_hidden_layers=2,  # 24
        num_attention_heads=4,  # 14
        num_key_value_heads=2,  # 2, so grouped-query attention is still exercised
        max_position_embeddings=1024,  # 32768
        tie_word_embeddings=False,  # untied, as the trainer unties lm_head anyway
        bos_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    model.generation_config.eos_token_id = config.eos_token_id
    model.generation_config.pad_token_id = config.pad_token_id

    model.save_pretrained(output_dir)
    tokenizer.save_pretrained(output_dir)
    logger.info("Wrote a tiny Qwen2 model (%d parameters) to %s",
                model.num_parameters(), output_dir)
    return output_dir


def build_tiny_tokenizer():  # -> PreTrainedTokenizerFast
    """Train a byte-level BPE tokenizer on the packaged radiology corpus."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = resources.files("policy_trainer").joinpath("data/tiny_corpus.txt")
    lines = corpus.read_text(encoding="utf-8").splitlines()

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=TINY_VOCAB_SIZE,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(lines, trainer=trainer)

    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<|endoftext|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
    )
    tokenizer.chat_template = packaged_chat_template()
    return tokenizer
