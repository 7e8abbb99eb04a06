"""Selection strategies that build a training set of a requested size from the pool.

- ``random``: a uniform random sample of the pool.
- ``uniform``: a random sample spread evenly over the (kind, answer) strata.
- ``hard_uniform``: the hard seeds and their Top-K neighbours, spread evenly over the
  strata. Within a stratum, seeds come first, then neighbours from the most similar down.
  When seeds plus neighbours are fewer than the requested size, the rest is filled with
  the remaining pool items most similar to any seed, and the result says how many.

When the pool itself is smaller than the requested size, every strategy returns the whole
pool and reports the shortfall.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from policy_trainer.mining.sampling import group_by_stratum, take_evenly
from policy_trainer.mining.similarity import Neighbours


@dataclass
class Selection:
    """A selected training set and how it was made."""

    strategy: str
    requested: int
    records: list[dict[str, Any]]
    origin: dict[str, int] = field(default_factory=dict)

    @property
    def shortfall(self) -> int:
        """Return how many records the set lacks against the requested size."""
        return self.requested - len(self.records)


def select_random(pool: Sequence[dict[str, Any]], size: int, rng: random.Random) -> Selection:
    """Draw ``size`` records uniformly at random."""
    records = rng.sample(list(pool), min(size, len(pool)))
    return Selection("random", size, records, {"random": len(records)})


def select_uniform(pool: Sequence[dict[str, Any]], size: int, rng: random.Random) -> Selection:
    """Draw ``size`` records spread evenly over strata, random within each stratum."""
    shuffled = list(pool)
    rng.shuffle(shuffled)
    records = take_evenly(shuffled, size)
    return Selection("uniform", size, records, {"uniform": len(records)})


def select_hard_uniform(
    pool: Sequence[dict[str, Any]], size: int, seeds: Sequence[int], neighbours: Neighbours,
    rng: random.Random,
) -> Selection:
    """Draw seeds and their neighbours, evenly over strata, up to ``size`` records."""
    core = hard_candidates(seeds, neighbours)
    ordered = [pool[index] for index in core]
    chosen = take_evenly(ordered, size)
    origin = {"seed": 0, "neighbour": 0, "fill": 0}
    seed_ids = {pool[index]["id"] for index in seeds}
    for record in chosen:
        origin["seed" if record["id"] in seed_ids else "neighbour"] += 1

    if len(chosen) < size:
        taken = {record["id"] for record in chosen}
        rest = [index for index in _fill_order(neighbours, len(pool), rng)
                if pool[index]["id"] not in taken]
        fill = take_evenly([pool[index] for index in rest], size - len(chosen))
        origin["fill"] = len(fill)
        chosen += fill
    return Selection("hard_uniform", size, chosen, origin)


def hard_candidates(seeds: Sequence[int], neighbours: Neighbours) -> list[int]:
    """Return seeds, then their neighbours by rank (round-robin over seeds), without repeats."""
    order = list(dict.fromkeys(seeds))
    seen = set(order)
    depth = max((len(found) for found in neighbours.top_k.values()), default=0)
    for rank in range(depth):
        for seed in seeds:
            found = neighbours.top_k.get(seed, [])
            if rank < len(found) and found[rank][0] not in seen:
                seen.add(found[rank][0])
                order.append(found[rank][0])
    return order


def _fill_order(neighbours: Neighbours, pool_size: int, rng: random.Random) -> list[int]:
    """Return pool positions from the most similar to any seed down; random without seeds."""
    if not neighbours.top_k:
        positions = list(range(pool_size))
        rng.shuffle(positions)
        return positions
    return [int(i) for i in np.argsort(-neighbours.max_similarity, kind="stable")]


def strata_counts(records: Sequence[dict[str, Any]]) -> dict[str, int]:
    """Count records per stratum, keyed ``kind/answer``."""
    return {
        f"{kind}/{answer}": len(members)
        for (kind, answer), members in group_by_stratum(records).items()
    }
