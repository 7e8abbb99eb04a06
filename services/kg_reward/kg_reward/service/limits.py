"""Batch and text size limits; a request past them gets 413 with the limit and the fix.

NOTE: the checks run after the JSON body is parsed, so they do not bound the body size
itself; a reverse proxy in front of the service should cap it.
"""

from __future__ import annotations

from collections.abc import Iterable

from fastapi import HTTPException

from kg_reward.service.settings import Settings


def check_batch_size(count: int, field: str, settings: Settings) -> None:
    if count > settings.max_batch_items:
        raise HTTPException(
            status_code=413,
            detail=f"{field} has {count} entries, more than the limit of "
            f"{settings.max_batch_items}; split the batch into smaller requests or raise "
            "KG_REWARD_MAX_BATCH_ITEMS",
        )


def check_text_lengths(texts: Iterable[tuple[str, str | None]], settings: Settings) -> None:
    """Raise 413 for the first (field, text) pair longer than ``max_text_chars``."""
    limit = settings.max_text_chars
    for field, text in texts:
        if text is not None and len(text) > limit:
            raise HTTPException(
                status_code=413,
                detail=f"{field} has {len(text)} characters, more than the limit of {limit}; "
                "shorten or truncate the text"
                + (
                    " or raise KG_REWARD_MAX_TEXT_CHARS (at most 100000)" if limit < 100_000 else ""
                ),
            )
