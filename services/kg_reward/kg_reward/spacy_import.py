"""Import spaCy without letting thinc import torch.

thinc (spaCy's machine-learning layer, 8.x) imports torch at import time whenever torch is
installed, which adds seconds of start-up and hundreds of MiB to a process that runs only
rule-based components. The reward service must not load torch, so ``import_spacy`` hides torch
while thinc checks for it. thinc then records "no torch" for the rest of the process; a later
``import torch`` elsewhere in the same process still works, because the block is lifted right
after spaCy is imported.
"""

from __future__ import annotations

import sys


def import_spacy() -> None:
    """Import spaCy with torch hidden, unless spaCy or torch is already imported."""
    if "spacy" in sys.modules or "torch" in sys.modules:
        return
    # A None entry in sys.modules makes `import torch` raise ImportError (Python import system).
    sys.modules["torch"] = None  # type: ignore[assignment]
    try:
        import spacy  # noqa: F401
    finally:
        del sys.modules["torch"]
