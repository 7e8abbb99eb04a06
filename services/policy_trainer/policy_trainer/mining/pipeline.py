"""The mining stage: find what the SFT model gets wrong or unsure, and build sets around it.

Steps:

1. Read the pool and draw ``sample_fraction`` of every (kind, answer) stratum.
2. Answer the sample greedily with the SFT model and measure each answer's confidence.
   Wrong answers, and right answers below ``sigma``, become hard seeds.
3. Embed image, question and rationale of every pool item and retrieve the Top-K most
   similar items of every seed.
4. Build one set per strategy and size, then write the sets, the report and a histogram
   of the confidences.
"""

from __future__ import annotations

import json
import logging
import random
import shutil
import time
from collections import Counter
from pathlib import Path
from typing import Any

from policy_trainer.mining.confidence import Generation, generate_answers, load_model
from policy_trainer.mining.config import MineConfig
from policy_trainer.mining.embeddings import embed_images, embed_texts, resolve_image
from policy_trainer.mining.sampling import read_pool, stratified_sample, stratum_of
from policy_trainer.mining.similarity import PoolEmbeddings, retrieve_neighbours
from policy_trainer.mining.strategies import (
    Selection,
    select_hard_uniform,
    select_random,
    select_uniform,
    strata_counts,
)
from policy_trainer.synthesis.dataset import write_jsonl
from policy_trainer.synthesis.grounding import normalize_answer

logger = logging.getLogger(__name__)


def mine(config: MineConfig) -> dict[str, Any]:
    """Run the stage and return the report that is also written to ``mining_report.json``."""
    started = time.perf_counter()
    timings: dict[str, float] = {}
    output_dir = Path(config.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(config.seed)

    # 1. Stratified sample of the pool, answered by the SFT model.
    pool = read_pool(config.pool_path or "")
    sample = stratified_sample(pool, config.sample_fraction, config.min_per_stratum, rng)
    step = time.perf_counter()
    model, tokenizer, device = load_model(config.model_path or "", config.device)
    generations = generate_answers(
        model, tokenizer, device, sample,
        max_new_tokens=config.max_new_tokens, batch_size=config.batch_size,
    )
    timings["generation_s"] = time.perf_counter() - step

    # 2. Hard seeds: wrong answers, and right answers with confidence below sigma.
    judged = [judge(record, generation, config.sigma)
              for record, generation in zip(sample, generations, strict=True)]
    write_jsonl(output_dir / "sample_predictions.jsonl", judged)
    position = {record["id"]: index for index, record in enumerate(pool)}
    seeds = [position[row["id"]] for row in judged if row["hard"]]

    # 3. Embeddings and Top-K neighbours of the seeds.
    step = time.perf_counter()
    embeddings, images_found = embed_pool(pool, config)
    neighbours = retrieve_neighbours(
        embeddings, seeds, config.similarity_weights, config.top_k, len(pool)
    )
    timings["embedding_and_retrieval_s"] = time.perf_counter() - step

    # 4. One set per strategy and size; the first one is mined.jsonl.
    selections = [
        select(strategy, pool, size, seeds, neighbours, random.Random(config.seed))
        for strategy in config.strategies for size in config.sizes
    ]
    for selection in selections:
        write_jsonl(output_dir / f"{selection.strategy}_{selection.requested}.jsonl",
                    selection.records)
    shutil.copyfile(
        output_dir / f"{selections[0].strategy}_{selections[0].requested}.jsonl",
        output_dir / "mined.jsonl",
    )

    # 5. Report and histogram.
    timings["total_s"] = time.perf_counter() - started
    report = build_report(config, pool, judged, seeds, neighbours, selections, images_found)
    report["timings"] = {name: round(value, 2) for name, value in timings.items()}
    (output_dir / "mining_report.json").write_text(
        json.dumps(report, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    plot_confidences(judged, config.sigma, output_dir / "confidence_histogram.png")
    return report


def judge(record: dict[str, Any], generation: Generation, sigma: float) -> dict[str, Any]:
    """Compare a generated answer with the reference and decide whether it is a hard seed."""
    reference = str(record.get("reference_answer", record["answer"]))
    correct = generation.answer is not None and (
        normalize_answer(generation.answer) == normalize_answer(reference)
    )
    low_confidence = correct and generation.confidence is not None \
        and generation.confidence < sigma
    return {
        "id": record["id"],
        "stratum": "/".join(stratum_of(record)),
        "reference_answer": reference,
        "prediction": generation.answer,
        "confidence": generation.confidence,
        "correct": correct,
        "low_confidence": low_confidence,
        "hard": (not correct) or low_confidence,
        "completion": generation.completion,
    }


def embed_pool(pool: list[dict[str, Any]], config: MineConfig) -> tuple[PoolEmbeddings, int]:
    """Embed the pool and return the embeddings and how many image files were found."""
    images = [resolve_image(record, config.image_root) for record in pool]
    found = sum(1 for image in images if image is not None)
    with_image_field = sum(1 for record in pool if record.get("image"))
    if with_image_field > found:
        logger.warning(
            "%d of %d pool items name an image that is not on disk (image_root=%s); "
            "they get image similarity 0", with_image_field - found, with_image_field,
            config.image_root,
        )
    embeddings = PoolEmbeddings(
        image=embed_images(images, config.image_backend, size=config.thumbnail_size,
                           model_path=config.image_model_path),
        question=embed_texts([str(r["question"]) for r in pool], config.text_backend,
                             config.text_model_path),
        rationale=embed_texts([str(r["rationale"]) for r in pool], config.text_backend,
                              config.text_model_path),
    )
    return embeddings, found


def select(
    strategy: str, pool: list[dict[str, Any]], size: int, seeds: list[int],
    neighbours: Any, rng: random.Random,
) -> Selection:
    """Build one set with ``strategy``; warn when the pool cannot fill the requested size."""
    if strategy == "random":
        selection = select_random(pool, size, rng)
    elif strategy == "uniform":
        selection = select_uniform(pool, size, rng)
    else:
        selection = select_hard_uniform(pool, size, seeds, neighbours, rng)
    if selection.shortfall > 0:
        logger.warning(
            "%s set of size %d: the pool has only %d items, so the set contains %d (%d short)",
            strategy, size, len(pool), len(selection.records), selection.shortfall,
        )
    return selection


def build_report(
    config: MineConfig, pool: list[dict[str, Any]], judged: list[dict[str, Any]],
    seeds: list[int], neighbours: Any, selections: list[Selection], images_found: int,
) -> dict[str, Any]:
    """Collect the counts that ``mining_report.json`` records."""
    confidences = [row["confidence"] for row in judged if row["confidence"] is not None]
    return {
        "pool_items": len(pool),
        "pool_per_stratum": strata_counts(pool),
        "pool_images_found": images_found,
        "sample_items": len(judged),
        "sample_per_stratum": dict(sorted(Counter(row["stratum"] for row in judged).items())),
        "sample_correct": sum(row["correct"] for row in judged),
        "seeds": len(seeds),
        "seeds_wrong": sum(not row["correct"] for row in judged),
        "seeds_without_answer": sum(row["prediction"] is None for row in judged),
        "seeds_low_confidence": sum(row["low_confidence"] for row in judged),
        "seeds_per_stratum": dict(sorted(
            Counter(row["stratum"] for row in judged if row["hard"]).items()
        )),
        "sigma": config.sigma,
        "confidence_mean": sum(confidences) / len(confidences) if confidences else None,
        "similarity_weights": {"image": config.similarity_weights[0],
                               "question": config.similarity_weights[1],
                               "rationale": config.similarity_weights[2]},
        "top_k": config.top_k,
        "neighbours_retrieved": len({i for found in neighbours.top_k.values() for i, _ in found}),
        "sets": [
            {
                "strategy": selection.strategy,
                "requested": selection.requested,
                "size": len(selection.records),
                "shortfall": selection.shortfall,
                "origin": selection.origin,
                "per_stratum": strata_counts(selection.records),
                "file": f"{selection.strategy}_{selection.requested}.jsonl",
            }
            for selection in selections
        ],
        "mined_file": f"{selections[0].strategy}_{selections[0].requested}.jsonl",
    }


def plot_confidences(judged: list[dict[str, Any]], sigma: float, path: Path) -> None:
    """Draw the histogram of answer confidences, right and wrong answers apart, and sigma."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scored = [row for row in judged if row["confidence"] is not None]
    right = [row["confidence"] for row in scored if row["correct"]]
    wrong = [row["confidence"] for row in scored if not row["correct"]]
    figure, axes = plt.subplots(figsize=(6, 4))
    axes.hist([right, wrong], bins=30, stacked=True, label=["right", "wrong"],
              color=["tab:green", "tab:red"])
    axes.axvline(sigma, color="black", linestyle="--", label=f"sigma = {sigma}")
    axes.set_xlabel("mean log-probability of the answer tokens")
    axes.set_ylabel("sampled items")
    missing = sum(row["confidence"] is None for row in judged)
    axes.set_title(f"Answer confidence ({len(judged)} items, {missing} without an answer)")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
