"""Helpers the components share: overlap resolution of matches and sentence lookup."""

from __future__ import annotations

import bisect

from spacy.attrs import SENT_START
from spacy.tokens import Doc

Match = tuple[int, int, int]


def longest_first(matches: list[Match]) -> list[Match]:
    """Keep non-overlapping matches, longest first and then earliest, in text order."""
    ordered = sorted(matches, key=lambda m: (m[1] - m[2], m[1]))
    taken: set[int] = set()
    kept = []
    for match in ordered:
        _, start, end = match
        if any(position in taken for position in range(start, end)):
            continue
        taken.update(range(start, end))
        kept.append(match)
    kept.sort(key=lambda m: m[1])
    return kept


class SentenceIndex:
    """Sentence boundaries of a doc, read once from the SENT_START array."""

    def __init__(self, doc: Doc) -> None:
        flags = doc.to_array(SENT_START).tolist() if doc.has_annotation("SENT_START") else []
        self.starts = [i for i, flag in enumerate(flags) if flag == 1] or [0]
        if self.starts[0] != 0:
            self.starts.insert(0, 0)
        self.length = len(doc)

    def bounds(self, token: int) -> tuple[int, int]:
        """Return ``(first token, end token)`` of the sentence that contains ``token``."""
        position = bisect.bisect_right(self.starts, token) - 1
        end = self.starts[position + 1] if position + 1 < len(self.starts) else self.length
        return self.starts[position], end

    def number(self, token: int) -> int:
        """Return the position of the sentence that contains ``token``."""
        return bisect.bisect_right(self.starts, token) - 1
