"""The spaCy pipeline that turns radiology text into ReXKG entities and relations.

``build_pipeline()`` returns ``spacy.blank("en")`` with four components, in order:
``kg_sections`` (sentences and report sections), ``kg_entities`` (lexicon matching),
``kg_context`` (negation and uncertainty) and ``kg_relations`` (modify, located_at,
suggestive_of). Importing this package registers the factories.
"""

from __future__ import annotations

from kg_reward.spacy_import import import_spacy

# Every module of this package imports spaCy; importing it here first keeps torch out.
import_spacy()

import spacy  # noqa: E402
from spacy.language import Language  # noqa: E402

from kg_reward.pipeline import factories as _factories  # noqa: E402, F401  (registers factories)

PIPE_NAMES = ("kg_sections", "kg_entities", "kg_context", "kg_relations")


def build_pipeline() -> Language:
    """Build the default pipeline and load its patterns from the packaged data files."""
    nlp = spacy.blank("en")
    for name in PIPE_NAMES:
        nlp.add_pipe(name)
    # The components have no weights, so initializing each one is all that nlp.initialize()
    # would do, without its optimizer and log lines.
    for _name, component in nlp.pipeline:
        component.initialize(nlp=nlp)  # type: ignore[attr-defined]
    return nlp
