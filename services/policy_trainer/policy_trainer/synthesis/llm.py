"""Rewording of template items by an OpenAI-compatible chat model, checked against the graph.

The CheXPO-v2 data were written by GPT-4o from the reports. Here a chat model gets the
report, the question, the answer the report graph gives and the report sentences about
the finding, and returns JSON ``{"question", "rationale", "answer"}``. Its item replaces
the template item only when

- its answer equals the graph's answer (after lower-casing and stripping punctuation),
- its question still names the finding (the question's graph contains the finding's
  canonical name), and
- its rationale passes ``check_item``: rationale entities are a subset of the report
  graph, the finding is stated with the same label, and region relations are kept.

A rejected or failed reply keeps the template item, and the summary counts each reason.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections import Counter
from typing import TYPE_CHECKING, Any

import httpx

from kg_schema import KnowledgeGraph
from policy_trainer.synthesis.grounding import check_item, normalize_answer
from policy_trainer.synthesis.questions import Candidate
from policy_trainer.synthesis.reports import Report

if TYPE_CHECKING:
    from policy_trainer.synthesis.config import SynthesizeConfig
    from policy_trainer.synthesis.pipeline import GraphExtractor

logger = logging.getLogger(__name__)

Draft = tuple[Candidate, str, Report, KnowledgeGraph]

INSTRUCTIONS = (
    "You write visual question answering items for chest X-ray training data. Given a "
    "radiology report and a draft item, rewrite the question in natural wording and write "
    "a short rationale that uses only facts stated in the report. Keep the answer exactly "
    "as given. Reply with one JSON object with the keys question, rationale and answer."
)
_FENCE = re.compile(r"^```(?:json)?\s*|\s*```$")


class ChatError(Exception):
    """A chat request failed or its reply is not the expected JSON object."""


class ChatClient:
    """A minimal client of ``POST {base_url}/chat/completions`` (OpenAI wire format)."""

    def __init__(
        self, *, base_url: str, model: str, api_key: str | None, timeout_s: float
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.model = model
        self._client = httpx.Client(
            base_url=base_url.rstrip("/"), headers=headers,
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0)),
        )

    def __enter__(self) -> ChatClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._client.close()

    def complete_json(self, system: str, user: str) -> dict[str, Any]:
        """Send one chat request (temperature 0) and parse the reply as a JSON object."""
        body = {
            "model": self.model,
            "temperature": 0,
            "messages": [
                {"role": "system", "content": system},
                {"role": "user", "content": user},
            ],
        }
        try:
            response = self._client.post("/chat/completions", json=body)
            response.raise_for_status()
            content = response.json()["choices"][0]["message"]["content"]
            reply = json.loads(_FENCE.sub("", content.strip()))
        except (httpx.HTTPError, KeyError, IndexError, TypeError, ValueError) as error:
            raise ChatError(f"{type(error).__name__}: {error}") from error
        if not isinstance(reply, dict):
            raise ChatError(f"reply is a JSON {type(reply).__name__}, not an object")
        return reply


def reword_items(
    config: SynthesizeConfig, drafts: list[Draft], extractor: GraphExtractor
) -> tuple[list[Draft], dict[str, Any]]:
    """Return the drafts with accepted model rewrites swapped in, and counts per outcome."""
    limit = len(drafts) if config.llm_max_items is None else config.llm_max_items
    api_key = os.environ.get(config.llm_api_key_env) or None
    outcomes: Counter[str] = Counter()
    replies: dict[int, dict[str, Any]] = {}

    assert config.llm_base_url is not None and config.llm_model is not None
    with ChatClient(base_url=config.llm_base_url, model=config.llm_model, api_key=api_key,
                    timeout_s=config.llm_timeout_s) as client:
        for position, (candidate, rationale, report, _) in enumerate(drafts[:limit]):
            try:
                replies[position] = client.complete_json(
                    INSTRUCTIONS, _request_text(candidate, rationale, report)
                )
            except ChatError as error:
                outcomes["failed_request"] += 1
                logger.warning("chat request for %s %r failed: %s",
                               candidate.report_id, candidate.question, error)

    texts = sorted({
        str(reply.get(key, "")) for reply in replies.values() for key in ("question", "rationale")
    })
    graphs = dict(zip(texts, extractor.extract(texts, batch_size=config.batch_size), strict=True))

    result: list[Draft] = []
    for position, draft in enumerate(drafts):
        reply = replies.get(position)
        if reply is None:
            result.append(draft)
            continue
        reason = validate_reply(draft, reply, graphs)
        if reason is not None:
            outcomes[f"rejected: {reason}"] += 1
            logger.info("rejected reworded item of %s: %s", draft[0].report_id, reason)
            result.append(draft)
            continue
        outcomes["accepted"] += 1
        result.append(_apply(draft, reply))
    summary = {"sent": len(replies) + outcomes["failed_request"], **dict(sorted(outcomes.items()))}
    return result, summary


def validate_reply(
    draft: Draft, reply: dict[str, Any], graphs: dict[str, KnowledgeGraph]
) -> str | None:
    """Return why a reworded item is rejected, or None when it agrees with the report graph."""
    candidate, _, _, report_graph = draft
    question, rationale, answer = (reply.get(key) for key in ("question", "rationale", "answer"))
    if not all(isinstance(value, str) and value.strip() for value in (question, rationale, answer)):
        return "missing question, rationale or answer"
    assert isinstance(question, str) and isinstance(rationale, str) and isinstance(answer, str)
    if normalize_answer(answer) != normalize_answer(candidate.answer):
        return "answer contradicts the report graph"
    if candidate.finding not in {entity.canonical for entity in graphs[question].entities}:
        return "question does not name the finding"
    reason = check_item(candidate, graphs[rationale], report_graph)
    if reason is not None:
        return "rationale not grounded"
    return None


def _request_text(candidate: Candidate, rationale: str, report: Report) -> str:
    return (
        f"Report:\n{report.text}\n\n"
        f"Question kind: {candidate.kind}\n"
        f"Draft question: {candidate.question}\n"
        f"Answer (keep exactly): {candidate.answer}\n"
        f"Report sentences about the finding: {rationale}\n"
    )


def _apply(draft: Draft, reply: dict[str, Any]) -> Draft:
    candidate, _, report, graph = draft
    reworded = Candidate(**{
        **candidate.__dict__, "question": reply["question"].strip(), "source": "llm",
    })
    return reworded, reply["rationale"].strip(), report, graph
