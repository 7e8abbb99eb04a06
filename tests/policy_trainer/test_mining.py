"""Tests of hard example mining: confidences, seeds, retrieval, strategies and the command.

The model of these tests is a hand-built one-layer Llama whose attention and MLP outputs
are zero, so each next-token distribution depends only on the last token: a bigram table
that the test writes. Its greedy output and the log-probability of every token are
therefore known before generation, and the test checks mining against them.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

torch = pytest.importorskip("torch")

from policy_trainer.commands import mine as mine_command  # noqa: E402
from policy_trainer.errors import ConfigError  # noqa: E402
from policy_trainer.mining.confidence import generate_answers, load_model  # noqa: E402
from policy_trainer.mining.config import MineConfig  # noqa: E402
from policy_trainer.mining.embeddings import embed_images, embed_texts  # noqa: E402
from policy_trainer.mining.pipeline import mine  # noqa: E402
from policy_trainer.mining.sampling import (  # noqa: E402
    allocate_evenly,
    group_by_stratum,
    stratified_sample,
)
from policy_trainer.mining.similarity import PoolEmbeddings, retrieve_neighbours  # noqa: E402
from policy_trainer.mining.strategies import (  # noqa: E402
    hard_candidates,
    select_hard_uniform,
    select_random,
    select_uniform,
)

VOCAB = [
    "[UNK]", "<pad>", "<eos>", "<go>", "<think>", "</think>", "<answer>", "</answer>",
    "effusion", "yes", "no", "left", "lung",
]
CHAT_TEMPLATE = (
    "{% for message in messages %}{{ message['role'] }} {{ message['content'] }} "
    "{% endfor %}{% if add_generation_prompt %}<go>{% endif %}"
)
# Logit of every token that is neither the next token of the chain nor the distractor.
FLOOR = -30.0


def chain_logits(answer: list[str], margins: dict[str, float]) -> dict[str, dict[str, float]]:
    """Return {token: {next token: logit}} for the chain <go> <think> ... </answer> <eos>.

    The next token gets ``margins.get(token, 8.0)``, the distractor "no" gets 0 and all
    other tokens FLOOR, so greedy decoding follows the chain.
    """
    chain = ["<go>", "<think>", "effusion", "</think>", "<answer>", *answer, "</answer>", "<eos>"]
    table = {}
    for token, following in zip(chain, chain[1:], strict=False):
        table[token] = {following: margins.get(token, 8.0), "no": 0.0}
    return table


def log_prob(row: dict[str, float], token: str) -> float:
    """Log-softmax of ``token`` in a logits row over the whole vocabulary."""
    logits = [row.get(name, FLOOR) for name in VOCAB]
    top = max(logits)
    normalizer = top + math.log(sum(math.exp(value - top) for value in logits))
    return row[token] - normalizer


def build_bigram_model(path: Path, table: dict[str, dict[str, float]]) -> Path:
    """Write a Llama whose next-token logits are ``table[last token]``."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    size = len(VOCAB)
    hidden = size + size % 2  # RoPE needs an even head size
    backend = Tokenizer(models.WordLevel({t: i for i, t in enumerate(VOCAB)}, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="[UNK]", pad_token="<pad>", eos_token="<eos>"
    )
    tokenizer.chat_template = CHAT_TEMPLATE

    config = LlamaConfig(
        vocab_size=size,
        hidden_size=hidden,  # one unit per token (rounded up to even): one-hot residual
        intermediate_size=4,
        num_hidden_layers=1,
        num_attention_heads=1,
        num_key_value_heads=1,
        max_position_embeddings=512,
        rms_norm_eps=1e-12,
        tie_word_embeddings=False,
        pad_token_id=VOCAB.index("<pad>"),
        eos_token_id=VOCAB.index("<eos>"),
        bos_token_id=VOCAB.index("<go>"),
    )
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.zero_()
        model.model.embed_tokens.weight.copy_(torch.eye(size, hidden))
        for layer in model.model.layers:
            layer.input_layernorm.weight.fill_(1.0)
            layer.post_attention_layernorm.weight.fill_(1.0)
        model.model.norm.weight.fill_(1.0)
        # RMSNorm turns a one-hot row into sqrt(hidden) * one-hot, so lm_head column t
        # contains the logits after token t divided by sqrt(hidden).
        head = torch.zeros((size, hidden))
        head[:, :size] = FLOOR
        for token, row in table.items():
            for following, logit in row.items():
                head[VOCAB.index(following), VOCAB.index(token)] = logit
        model.lm_head.weight.copy_(head / math.sqrt(hidden))
    model.generation_config.pad_token_id = config.pad_token_id
    model.generation_config.eos_token_id = config.eos_token_id
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def make_record(index: int, kind: str, answer: str, question: str | None = None) -> dict[str, Any]:
    question = question or f"Is there finding number {index} in case {index % 7}?"
    rationale = f"Sentence {index} about effusion of case {index % 5}."
    return {
        "id": f"r{index:03d}", "report_id": f"rep{index}", "kind": kind,
        "question": question, "answer": answer, "rationale": rationale,
        "reference": rationale, "reference_answer": answer,
        "messages": [
            {"role": "user", "content": question},
            {"role": "assistant",
             "content": f"<think>{rationale}</think><answer>{answer}</answer>"},
        ],
    }


def make_pool(count: int = 60) -> list[dict[str, Any]]:
    strata = [("basic", "yes"), ("basic", "no"), ("region", "yes"), ("region", "no"),
              ("region", "left lung"), ("comparison", "worse")]
    return [make_record(i, *strata[i % len(strata)]) for i in range(count)]


def write_pool(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def yes_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float]:
    """A model that always answers "yes" and the exact confidence of that answer."""
    table = chain_logits(["yes"], {"<answer>": 2.0})
    path = build_bigram_model(tmp_path_factory.mktemp("yes_model"), table)
    return path, log_prob(table["<answer>"], "yes")


# -- confidence -------------------------------------------------------------------------


def test_confidence_equals_mean_answer_token_log_prob(tmp_path: Path) -> None:
    margins = {"<answer>": 1.5, "left": 0.5}
    table = chain_logits(["left", "lung"], margins)
    model, tokenizer, device = load_model(build_bigram_model(tmp_path, table), "cpu")

    [generation] = generate_answers(
        model, tokenizer, device, [make_record(0, "region", "left lung")],
        max_new_tokens=16, batch_size=1,
    )

    expected = (log_prob(table["<answer>"], "left") + log_prob(table["left"], "lung")) / 2
    assert generation.answer == "left lung"
    assert generation.confidence == pytest.approx(expected, abs=1e-4)


def test_confidence_is_none_without_answer_tag(tmp_path: Path) -> None:
    table = chain_logits(["yes"], {})
    table["</think>"] = {"<eos>": 8.0, "no": 0.0}  # stop before <answer>
    model, tokenizer, device = load_model(build_bigram_model(tmp_path, table), "cpu")

    [generation] = generate_answers(
        model, tokenizer, device, [make_record(0, "basic", "yes")], max_new_tokens=16,
        batch_size=1,
    )

    assert generation.answer is None
    assert generation.confidence is None


def test_confidence_same_in_batches(yes_model: tuple[Path, float]) -> None:
    model, tokenizer, device = load_model(yes_model[0], "cpu")
    records = [make_record(i, "basic", "yes") for i in range(5)]

    batched = generate_answers(model, tokenizer, device, records, max_new_tokens=16,
                               batch_size=5)
    single = generate_answers(model, tokenizer, device, records, max_new_tokens=16,
                              batch_size=1)

    assert [g.answer for g in batched] == [g.answer for g in single]
    for left, right in zip(batched, single, strict=True):
        assert left.confidence == pytest.approx(right.confidence, abs=1e-5)


# -- seeds ------------------------------------------------------------------------------


def run_mine(tmp_path: Path, model_path: Path, sigma: float, **overrides: Any) -> dict[str, Any]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    pool = write_pool(tmp_path / "pool.jsonl", make_pool())
    settings = {"model_path": str(model_path), "pool_path": str(pool),
                "output_dir": str(tmp_path / "out"), "sample_fraction": 1.0, "sigma": sigma,
                "max_new_tokens": 16, "batch_size": 16, "sizes": [12], "device": "cpu",
                **overrides}
    return mine(MineConfig(**settings))


def seed_ids(tmp_path: Path) -> set[str]:
    rows = [json.loads(line) for line in
            (tmp_path / "out" / "sample_predictions.jsonl").read_text().splitlines()]
    return {row["id"] for row in rows if row["hard"]}


def test_mine_seeds_are_wrong_answers_above_sigma(
    tmp_path: Path, yes_model: tuple[Path, float]
) -> None:
    model_path, confidence = yes_model
    report = run_mine(tmp_path, model_path, sigma=confidence - 0.05)

    expected = {r["id"] for r in make_pool() if r["answer"] != "yes"}
    assert seed_ids(tmp_path) == expected
    assert report["seeds_wrong"] == len(expected)
    assert report["seeds_low_confidence"] == 0


def test_mine_seeds_add_low_confidence_right_answers(
    tmp_path: Path, yes_model: tuple[Path, float]
) -> None:
    model_path, confidence = yes_model
    report = run_mine(tmp_path, model_path, sigma=confidence + 0.05)

    assert seed_ids(tmp_path) == {r["id"] for r in make_pool()}
    assert report["seeds_low_confidence"] == sum(r["answer"] == "yes" for r in make_pool())


def test_mine_writes_outputs(tmp_path: Path, yes_model: tuple[Path, float]) -> None:
    run_mine(tmp_path, yes_model[0], sigma=-0.25, strategies=["hard_uniform", "random"],
             sizes=[10, 100])
    output = tmp_path / "out"

    mined = [json.loads(line) for line in (output / "mined.jsonl").read_text().splitlines()]
    report = json.loads((output / "mining_report.json").read_text())
    assert len(mined) == 10
    assert (output / "confidence_histogram.png").read_bytes()[:4] == b"\x89PNG"
    assert [s["size"] for s in report["sets"]] == [10, 60, 10, 60]
    assert [s["shortfall"] for s in report["sets"]] == [0, 40, 0, 40]


def test_mine_same_seed_gives_identical_sets(
    tmp_path: Path, yes_model: tuple[Path, float]
) -> None:
    settings = {"sample_fraction": 0.5, "strategies": ["hard_uniform", "uniform", "random"],
                "sizes": [9]}
    run_mine(tmp_path / "a", yes_model[0], sigma=-0.25, **settings)
    run_mine(tmp_path / "b", yes_model[0], sigma=-0.25, **settings)

    for name in ("hard_uniform_9.jsonl", "uniform_9.jsonl", "random_9.jsonl",
                 "sample_predictions.jsonl"):
        first = (tmp_path / "a" / "out" / name).read_bytes()
        assert first == (tmp_path / "b" / "out" / name).read_bytes(), name


def test_mine_command_rejects_missing_model_path(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    mine_command.register(parser.add_subparsers())
    args = parser.parse_args(["mine", "--pool_path", str(tmp_path / "pool.jsonl")])

    with pytest.raises(ConfigError, match="model_path"):
        args.func(args)


def test_mine_rejects_model_without_config(tmp_path: Path) -> None:
    pool = write_pool(tmp_path / "pool.jsonl", make_pool(6))
    config = MineConfig(model_path=str(tmp_path), pool_path=str(pool),
                        output_dir=str(tmp_path / "out"))

    with pytest.raises(ConfigError, match="config.json"):
        mine(config)


# -- sampling and strategies --------------------------------------------------------------


def test_stratified_sample_takes_fraction_per_stratum() -> None:
    pool = make_pool(600)
    sample = stratified_sample(pool, 0.1, 1, random.Random(0))

    counts = {stratum: len(members) for stratum, members in group_by_stratum(sample).items()}
    assert set(counts.values()) == {10}


def test_stratified_sample_keeps_small_strata() -> None:
    pool = make_pool(60)
    sample = stratified_sample(pool, 0.02, 1, random.Random(0))

    assert len(group_by_stratum(sample)) == len(group_by_stratum(pool))


def test_allocate_evenly_moves_spare_quota() -> None:
    quotas = allocate_evenly({("a", "x"): 2, ("b", "y"): 50, ("c", "z"): 50}, 30)

    assert quotas == {("a", "x"): 2, ("b", "y"): 14, ("c", "z"): 14}


@pytest.mark.parametrize("size", [1, 7, 30, 59])
def test_strategies_return_requested_size(size: int) -> None:
    pool = make_pool(60)
    neighbours = fake_neighbours(pool, seeds=[0, 1, 2])

    for selection in (
        select_random(pool, size, random.Random(0)),
        select_uniform(pool, size, random.Random(0)),
        select_hard_uniform(pool, size, [0, 1, 2], neighbours, random.Random(0)),
    ):
        assert len(selection.records) == size, selection.strategy
        assert len({r["id"] for r in selection.records}) == size, selection.strategy


def test_strategies_report_shortfall_of_small_pool() -> None:
    pool = make_pool(20)
    neighbours = fake_neighbours(pool, seeds=[0])

    selection = select_hard_uniform(pool, 50, [0], neighbours, random.Random(0))

    assert len(selection.records) == 20
    assert selection.shortfall == 30


def test_uniform_spreads_evenly_over_strata() -> None:
    selection = select_uniform(make_pool(120), 30, random.Random(0))

    counts = [len(m) for m in group_by_stratum(selection.records).values()]
    assert counts == [5] * 6


def test_hard_uniform_starts_with_seeds_and_neighbours() -> None:
    pool = make_pool(60)
    neighbours = fake_neighbours(pool, seeds=[0, 1])

    selection = select_hard_uniform(pool, 6, [0, 1], neighbours, random.Random(0))

    chosen = {r["id"] for r in selection.records}
    core = {pool[i]["id"] for i in hard_candidates([0, 1], neighbours)}
    assert {"r000", "r001"} <= chosen
    assert chosen <= core
    assert selection.origin["fill"] == 0


def test_hard_uniform_fills_from_nearest_items() -> None:
    pool = make_pool(60)
    neighbours = fake_neighbours(pool, seeds=[0], k=2)

    selection = select_hard_uniform(pool, 12, [0], neighbours, random.Random(0))

    assert len(selection.records) == 12
    assert selection.origin == {"seed": 1, "neighbour": 2, "fill": 9}


def fake_neighbours(pool: list[dict[str, Any]], seeds: list[int], k: int = 5) -> Any:
    texts = [r["question"] for r in pool]
    embeddings = PoolEmbeddings(
        image=np.zeros((len(pool), 4), dtype=np.float32),
        question=embed_texts(texts, "tfidf"),
        rationale=embed_texts([r["rationale"] for r in pool], "tfidf"),
    )
    return retrieve_neighbours(embeddings, seeds, [1 / 3, 1 / 3, 1 / 3], k, len(pool))


# -- similarity ---------------------------------------------------------------------------


def test_retrieve_neighbours_ranks_by_weighted_similarity() -> None:
    questions = ["is there effusion", "is there effusion", "where is the nodule",
                 "is there effusion in the left lung"]
    rationales = ["alpha", "beta", "alpha", "alpha"]
    embeddings = PoolEmbeddings(
        image=np.zeros((4, 2), dtype=np.float32),
        question=embed_texts(questions, "tfidf"),
        rationale=embed_texts(rationales, "tfidf"),
    )

    question_only = retrieve_neighbours(embeddings, [0], [0, 1, 0], 3, 4)
    rationale_only = retrieve_neighbours(embeddings, [0], [0, 0, 1], 1, 4)

    assert [i for i, _ in question_only.top_k[0]][:2] == [1, 3]
    assert question_only.top_k[0][0][1] == pytest.approx(1.0, abs=1e-5)
    assert [i for i, _ in rationale_only.top_k[0]] == [2]


def test_image_without_file_has_zero_similarity(tmp_path: Path) -> None:
    from PIL import Image

    gradient = np.tile(np.arange(64, dtype=np.uint8) * 4, (64, 1))
    for name in ("a.png", "b.png"):
        Image.fromarray(gradient).save(tmp_path / name)

    rows = embed_images([tmp_path / "a.png", tmp_path / "b.png", None], "thumbnail", size=8)

    assert float(rows[0] @ rows[1]) == pytest.approx(1.0, abs=1e-5)
    assert not rows[2].any()


# -- the SFT model of the other stages ------------------------------------------------------


def greedy_reference(model: Any, tokenizer: Any, prompt: str, steps: int) -> tuple[list[int],
                                                                                   list[float]]:
    """Decode greedily with plain forward passes and return tokens and their log-probs."""
    ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"]
    tokens: list[int] = []
    log_probs: list[float] = []
    with torch.no_grad():
        for _ in range(steps):
            logits = model(input_ids=ids).logits[0, -1].float()
            scores = torch.log_softmax(logits, dim=-1)
            token = int(torch.argmax(logits))
            if token in (tokenizer.eos_token_id, tokenizer.pad_token_id):
                break
            tokens.append(token)
            log_probs.append(float(scores[token]))
            ids = torch.cat([ids, torch.tensor([[token]])], dim=1)
    return tokens, log_probs


@pytest.mark.slow
def test_mine_sft_model_confidences_match_reference(
    sft_run_dir: Path, chat_records_path: Path, tmp_path: Path
) -> None:
    from policy_trainer.cli import main
    from policy_trainer.mining.confidence import answer_span, build_prompt, tag_token_ids

    code = main(["mine", "--model_path", str(sft_run_dir / "final"), "--pool_path",
                 str(chat_records_path), "--output_dir", str(tmp_path), "--sample_fraction",
                 "1.0", "--max_new_tokens", "24", "--sizes", "[4, 8]", "--device", "cpu",
                 "--batch_size", "1",  # no padding, so greedy ties cannot differ from below
                 "--strategies", "[hard_uniform, uniform, random]"])
    assert code == 0

    model, tokenizer, _ = load_model(sft_run_dir / "final", "cpu")
    open_id, close_id = tag_token_ids(tokenizer)
    records = {r["id"]: r for r in map(json.loads, chat_records_path.read_text().splitlines())}
    rows = [json.loads(line) for line in (tmp_path / "sample_predictions.jsonl").open()]
    assert len(rows) == len(records)
    assert any(row["confidence"] is not None for row in rows), "the SFT model wrote no answer"
    for row in rows:
        prompt = build_prompt(tokenizer, records[row["id"]])
        tokens, log_probs = greedy_reference(model, tokenizer, prompt, 24)
        span = answer_span(tokens, open_id, close_id)
        if span is None or span[0] == span[1]:
            assert row["confidence"] is None, row["id"]
            continue
        expected = sum(log_probs[span[0]:span[1]]) / (span[1] - span[0])
        assert row["confidence"] == pytest.approx(expected, abs=1e-4), row["id"]

    report = json.loads((tmp_path / "mining_report.json").read_text())
    assert report["seeds"] == sum(row["hard"] for row in rows)
    assert [s["size"] for s in report["sets"]] == [4, 8, 4, 8, 4, 8]


# -- configuration and optional backends ------------------------------------------------------


@pytest.mark.parametrize(("field", "value", "message"), [
    ("sigma", 0.5, "sigma=0.5"),
    ("sample_fraction", 0.0, "sample_fraction=0.0"),
    ("strategies", ["hardest"], "strategies="),
    ("similarity_weights", [1.0, 0.0], "similarity_weights="),
    ("sizes", [0], "sizes="),
    ("text_backend", "sentence_transformers", "text_model_path"),
])
def test_mine_config_rejects_invalid_field(field: str, value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        MineConfig(model_path=Path("m"), pool_path=Path("p"), **{field: value})


def test_sentence_transformers_backend_needs_package(tmp_path: Path) -> None:
    try:
        import sentence_transformers  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("sentence-transformers is installed")

    with pytest.raises(ConfigError, match="pip install sentence-transformers"):
        embed_texts(["no effusion"], "sentence_transformers", tmp_path)


def test_biomedclip_backend_needs_package(tmp_path: Path) -> None:
    try:
        import open_clip  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("open_clip is installed")

    with pytest.raises(ConfigError, match="pip install open_clip_torch"):
        embed_images([None], "biomedclip", model_path=tmp_path)


def test_mine_cli_exits_2_on_missing_pool(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from policy_trainer.cli import main

    code = main(["mine", "--model_path", str(tmp_path), "--pool_path",
                 str(tmp_path / "absent.jsonl"), "--output_dir", str(tmp_path / "out")])

    error = capsys.readouterr().err.strip()
    assert code == 2
    assert error.startswith("policy-trainer mine: error: cannot read pool")
    assert "\n" not in error


def test_thumbnail_reads_dicom_chest_radiograph(tmp_path: Path) -> None:
    from PIL import Image
    from pydicom.data import get_testdata_file

    dicom = get_testdata_file("RG1_UNCI.dcm", download=False)
    if dicom is None:
        pytest.skip("pydicom-data is not installed")
    Image.new("L", (64, 64), color=128).save(tmp_path / "flat.png")

    rows = embed_images([Path(dicom), Path(dicom), tmp_path / "flat.png"], "thumbnail", size=16)

    assert rows[0].any()
    assert float(rows[0] @ rows[1]) == pytest.approx(1.0, abs=1e-5)
    assert not rows[2].any()  # a flat image has nothing left after mean-centring
