"""Weighted image/question/rationale similarity and Top-K retrieval around hard seeds."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

# Seeds compared with the whole pool per block, to bound memory at block x pool floats.
SEED_BLOCK = 256


@dataclass(frozen=True)
class PoolEmbeddings:
    """Normalized embeddings of the pool: one row per item in pool order."""

    image: Any
    question: Any
    rationale: Any


@dataclass(frozen=True)
class Neighbours:
    """Retrieval result: Top-K neighbours per seed and each item's best seed similarity."""

    top_k: dict[int, list[tuple[int, float]]]
    max_similarity: np.ndarray


def similarity_rows(
    embeddings: PoolEmbeddings, rows: Sequence[int], weights: Sequence[float]
) -> np.ndarray:
    """Return w_image*cos_image + w_question*cos_question + w_rationale*cos_rationale.

    The result has one row per entry of ``rows`` and one column per pool item. An item
    without an image has a zero image row, so its image cosine is 0 with every item.
    """
    total = None
    for weight, matrix in zip(weights, (embeddings.image, embeddings.question,
                                        embeddings.rationale), strict=True):
        if weight == 0:
            continue
        block = matrix[list(rows)] @ matrix.T
        block = block.toarray() if hasattr(block, "toarray") else np.asarray(block)
        total = weight * block if total is None else total + weight * block
    assert total is not None, "similarity weights must not all be 0"
    return total.astype(np.float32)


def retrieve_neighbours(
    embeddings: PoolEmbeddings, seeds: Sequence[int], weights: Sequence[float], k: int,
    pool_size: int,
) -> Neighbours:
    """Return the ``k`` most similar pool items of every seed, the seed itself excluded.

    Ties break by pool position, so retrieval is deterministic.
    """
    top_k: dict[int, list[tuple[int, float]]] = {}
    best = np.full(pool_size, -np.inf, dtype=np.float32)
    for begin in range(0, len(seeds), SEED_BLOCK):
        block_seeds = list(seeds[begin:begin + SEED_BLOCK])
        scores = similarity_rows(embeddings, block_seeds, weights)
        for row, seed in enumerate(block_seeds):
            scores[row, seed] = -np.inf
            # A stable sort of the negated scores keeps the lower pool index first on ties.
            order = np.argsort(-scores[row], kind="stable")[:k]
            top_k[seed] = [(int(i), float(scores[row, i])) for i in order]
        best = np.maximum(best, scores.max(axis=0))
    return Neighbours(top_k=top_k, max_similarity=best)
