"""Merge the weights and options of a request into the service defaults, field by field.

A request that sends ``{"options": {"explain": true}}`` keeps every other option of the
service (its preset included), so turning on ``explain`` never changes the reward.
"""

from __future__ import annotations

from kg_schema.scoring import ScoreOptions, Weights


def merge_weights(defaults: Weights, override: Weights | None) -> Weights:
    """Return ``defaults`` with the fields that ``override`` set explicitly."""
    if override is None:
        return defaults
    return Weights.model_validate(
        {**defaults.model_dump(), **override.model_dump(exclude_unset=True)}
    )


def merge_options(defaults: ScoreOptions, override: ScoreOptions | None) -> ScoreOptions:
    """Return ``defaults`` with the fields that ``override`` set explicitly.

    Validation runs again on the merged fields, so a preset (from either side) applies
    over the merged options. A request that wants another match or metric while the
    service runs a preset must therefore send ``"preset": null``.
    """
    if override is None:
        return defaults
    return ScoreOptions.model_validate(
        {**defaults.model_dump(), **override.model_dump(exclude_unset=True)}
    )
