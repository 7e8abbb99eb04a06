"""Reading the chat-format JSONL records of ``policy-trainer synthesize`` for training.

A record contains ``messages`` (system?, user, assistant), where the assistant turn is
``<think>rationale</think><answer>answer</answer>``, plus ``rationale``, ``answer``, ``id``
and optionally ``image``. ``read_records`` checks each line; ``sft_rows`` and
``prompt_rows`` turn the records into the rows TRL's SFT and GRPO trainers take, and
``load_dataset_rows`` is the one place that builds a ``datasets.Dataset`` from them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from policy_trainer.errors import DataError

if TYPE_CHECKING:
    from datasets import Dataset

logger = logging.getLogger(__name__)

ROLES = ("system", "user", "assistant")


def read_records(path: Path) -> list[dict[str, Any]]:
    """Read a JSONL file of chat records, raising DataError with the line of a bad record."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file {path} not found; run 'policy-trainer synthesize' first "
                        f"or point the *_file field at an existing JSONL file")
    records = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise DataError(f"{path}:{number} is not valid JSON: {error.msg}") from error
            _check_record(record, f"{path}:{number}")
            records.append(record)
    if not records:
        raise DataError(f"data file {path} contains no records")
    return records


def _check_record(record: Any, where: str) -> None:
    if not isinstance(record, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(record).__name__}")
    messages = record.get("messages")
    if not isinstance(messages, list) or not messages:
        raise DataError(f"{where}: field 'messages' must be a non-empty list of chat messages")
    for message in messages:
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise DataError(f"{where}: every message needs a role out of {ROLES}, got {message!r}")
        if not isinstance(message.get("content"), (str, list)):
            raise DataError(f"{where}: message content must be a string or a list of parts")
    if messages[-1]["role"] != "assistant":
        raise DataError(f"{where}: the last message must be the assistant turn with the "
                        f"reference <think>...</think><answer>...</answer>")


def sft_rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return ``{"messages": ...}`` rows, the conversational format of TRL's SFTTrainer."""
    return [{"messages": record["messages"]} for record in records]


def prompt_rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return GRPO rows: the prompt (messages without the assistant turn) and references.

    ``reference`` is the rationale and ``reference_answer`` the answer. A record without a
    ``rationale`` uses the whole assistant turn as reference, from which the service reads
    the ``<answer>`` block when ``reference_answer`` is empty.
    """
    rows = []
    for index, record in enumerate(records):
        assistant = record["messages"][-1]["content"]
        reference = record.get("rationale") or _text_of(assistant)
        rows.append({
            "id": str(record.get("id", index)),
            "prompt": record["messages"][:-1],
            "reference": reference,
            "reference_answer": record.get("answer"),
        })
    return rows


def _text_of(content: str | list[dict[str, Any]]) -> str:
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content if part.get("type") == "text")


def load_dataset_rows(
    path: Path, to_rows: Callable[[list[dict[str, Any]]], list[dict[str, Any]]]
) -> Dataset:
    """Read ``path`` and build a ``datasets.Dataset`` of ``to_rows(records)``.

    Text models only: an ``image`` field is ignored here. Vision-language models read
    their data through ``vision.load_image_dataset_rows``, which adds the images.
    """
    from datasets import Dataset

    records = read_records(path)
    with_image = sum(1 for record in records if record.get("image"))
    if with_image:
        logger.info("%s: %d of %d records name an image; this text stage ignores them",
                    path, with_image, len(records))
    return Dataset.from_list(to_rows(records))
