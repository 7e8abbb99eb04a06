"""Final-answer matching for the answer component of the reward.

Three modes compare a completion's ``<answer>`` with the reference answer:

- ``exact`` (the default): 1.0 when both normalize to the same string, else 0.0. It is the
  strictest mode and the outcome reward of the method ("1 if the final answer matches").
  A policy cannot raise it by listing many findings, which the other two modes allow.
- ``set``: both answers split into items at commas, semicolons, "&" and the word "and";
  the score is the Jaccard index of the two item sets, so partial lists earn partial credit.
- ``overlap``: 1.0 when any item of the completion equals any item of the reference. The
  published CheXPO-v2 reward does this; it pays a hedged answer that lists every finding.

Normalization is Unicode NFKC, case folding, punctuation to spaces, the articles a, an
and the removed, whitespace collapsed, and whole answers that are a yes or no synonym
(yes/true/present/positive, no/false/absent/negative/not present) mapped to "yes" or "no".
"""

from __future__ import annotations

import re
import unicodedata

from kg_schema.scoring import AnswerMode

_ARTICLES = frozenset({"a", "an", "the"})
_YES = frozenset({"yes", "y", "true", "present", "positive"})
_NO = frozenset({"no", "n", "false", "absent", "negative", "not present"})

_PUNCTUATION = re.compile(r"[^\w\s]|_")
_ITEM_SEPARATOR = re.compile(r"[,;&]|\band\b")


def normalize_answer(text: str) -> str:
    """Return the comparable form of one answer or list item (see the module docstring)."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    words = [word for word in _PUNCTUATION.sub(" ", folded).split() if word not in _ARTICLES]
    normalized = " ".join(words)
    if normalized in _YES:
        return "yes"
    if normalized in _NO:
        return "no"
    return normalized


def answer_items(text: str) -> set[str]:
    """Split an answer into its normalized, non-empty items.

    NOTE: "and" always separates items, so "left and right lung" becomes {"left",
    "right lung"}; both sides split the same way, which keeps equal answers equal.
    """
    folded = unicodedata.normalize("NFKC", text).casefold()
    items = (normalize_answer(part) for part in _ITEM_SEPARATOR.split(folded))
    return {item for item in items if item}


def score_answer(completion: str | None, reference: str | None, mode: AnswerMode) -> float | None:
    """Return the answer component in [0, 1], or None when there is no reference answer.

    A reference answer that is None or normalizes to an empty string cannot be matched,
    so the component is None (it then adds 0 to the reward). A completion without an
    answer scores 0.0.
    """
    if reference is None or not normalize_answer(reference):
        return None
    if completion is None:
        return 0.0

    if mode == "exact":
        return 1.0 if normalize_answer(completion) == normalize_answer(reference) else 0.0

    predicted = answer_items(completion)
    expected = answer_items(reference)
    shared = predicted & expected
    if mode == "overlap":
        return 1.0 if shared else 0.0
    return len(shared) / len(predicted | expected)
