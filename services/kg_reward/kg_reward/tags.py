"""Split a model completion into its rationale (``<think>``) and final answer (``<answer>``).

Tag names are matched case-insensitively; ``think_tag`` and ``answer_tag`` change them. The
rules for malformed text, chosen so that a reward still sees the rationale the model wrote:

* ``think``: the contents of every closed think block, joined by a newline. Without a closed
  block, the text after an unclosed opening tag up to the answer block (or the end); or the text
  before a stray closing tag; or, when no think tag appears at all, the whole text without its
  answer block. Tags that are left over are removed and the result is stripped.
* ``answer``: the contents of the last closed answer block (the final answer wins when the model
  answered twice); without one, the text after the last unclosed opening tag; ``None`` when no
  answer tag appears.
* ``well_formed``: exactly one closed think block followed by exactly one closed answer block,
  with only whitespace before, between and after them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True)
class ParsedCompletion:
    """The rationale, the final answer and whether the completion followed the tag format."""

    think: str
    answer: str | None
    well_formed: bool


@lru_cache(maxsize=16)
def _patterns(think_tag: str, answer_tag: str) -> dict[str, re.Pattern[str]]:
    for tag in (think_tag, answer_tag):
        if not re.fullmatch(r"[A-Za-z][\w-]*", tag):
            raise ValueError(
                f"tag name {tag!r} is invalid; use letters, digits, '_' or '-', starting "
                "with a letter"
            )
    think, answer = re.escape(think_tag), re.escape(answer_tag)
    flags = re.IGNORECASE | re.DOTALL
    return {
        "think_block": re.compile(rf"<{think}>(.*?)</{think}>", flags),
        "answer_block": re.compile(rf"<{answer}>(.*?)</{answer}>", flags),
        "think_open": re.compile(rf"<{think}>", flags),
        "think_close": re.compile(rf"</{think}>", flags),
        "answer_open": re.compile(rf"<{answer}>", flags),
        "any_tag": re.compile(rf"</?(?:{think}|{answer})>", flags),
        "well_formed": re.compile(
            rf"\s*<{think}>((?:(?!</?{think}>|</?{answer}>).)*)</{think}>\s*"
            rf"<{answer}>((?:(?!</?{think}>|</?{answer}>).)*)</{answer}>\s*",
            flags,
        ),
    }


def parse_completion(
    text: str, *, think_tag: str = "think", answer_tag: str = "answer"
) -> ParsedCompletion:
    """Return the rationale and answer of ``text`` under the rules in the module docstring."""
    if not isinstance(text, str):
        raise TypeError(f"completion must be a str, got {type(text).__name__}")
    patterns = _patterns(think_tag, answer_tag)
    well_formed = patterns["well_formed"].fullmatch(text) is not None
    return ParsedCompletion(
        think=_think_text(text, patterns),
        answer=_answer_text(text, patterns),
        well_formed=well_formed,
    )


def _think_text(text: str, patterns: dict[str, re.Pattern[str]]) -> str:
    blocks = patterns["think_block"].findall(text)
    if blocks:
        raw = "\n".join(blocks)
    else:
        without_answers = patterns["answer_block"].sub(" ", text)
        opening = patterns["think_open"].search(without_answers)
        closing = patterns["think_close"].search(without_answers)
        if opening is not None:
            rest = without_answers[opening.end() :]
            answer = patterns["answer_open"].search(rest)
            raw = rest[: answer.start()] if answer is not None else rest
        elif closing is not None:
            raw = without_answers[: closing.start()]
        else:
            answer = patterns["answer_open"].search(without_answers)
            raw = without_answers[: answer.start()] if answer is not None else without_answers
    return patterns["any_tag"].sub(" ", raw).strip()


def _answer_text(text: str, patterns: dict[str, re.Pattern[str]]) -> str | None:
    blocks = patterns["answer_block"].findall(text)
    if blocks:
        return patterns["any_tag"].sub(" ", blocks[-1]).strip()
    openings = list(patterns["answer_open"].finditer(text))
    if not openings:
        return None
    return patterns["any_tag"].sub(" ", text[openings[-1].end() :]).strip()
