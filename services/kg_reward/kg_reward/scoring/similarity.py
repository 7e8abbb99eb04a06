"""Set similarity of entity keys and relation triplets, and their item-level comparison."""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Set

from kg_schema.scoring import Metric, SetComparison


def set_similarity(
    predicted: Set[Hashable],
    reference: Set[Hashable],
    *,
    metric: Metric,
    beta: float = 2.0,
    empty_score: float = 1.0,
) -> float:
    """Return the similarity of two sets in [0, 1].

    ``jaccard`` is |P & R| / |P | R|. ``f1`` and ``fbeta`` are the F-measure of precision
    |P & R| / |P| and recall |P & R| / |R|, with ``beta`` > 1 weighting recall more. When
    both sets are empty the result is ``empty_score``; when only one is, it is 0.0.
    """
    if not predicted and not reference:
        return empty_score

    shared = len(predicted & reference)
    if metric == "jaccard":
        return shared / len(predicted | reference)

    # F-beta written with counts, (1 + b^2) TP / ((1 + b^2) TP + b^2 FN + FP), which is
    # defined (and 0) when precision or recall is 0.
    weight = 1.0 if metric == "f1" else beta * beta
    missing = len(reference) - shared
    extra = len(predicted) - shared
    true_positive = (1.0 + weight) * shared
    return true_positive / (true_positive + weight * missing + extra)


def compare_sets(predicted: Set[tuple[str, ...]], reference: Set[tuple[str, ...]]) -> SetComparison:
    """List the matched, missing (reference only) and extra (completion only) keys, sorted."""
    return SetComparison(
        matched=_as_lists(predicted & reference),
        missing=_as_lists(reference - predicted),
        extra=_as_lists(predicted - reference),
    )


def _as_lists(keys: Iterable[tuple[str, ...]]) -> list[list[str]]:
    return [list(key) for key in sorted(keys)]
