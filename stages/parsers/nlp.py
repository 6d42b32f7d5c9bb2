"""The spaCy pipeline shared by every parser in a process."""

from __future__ import annotations

from functools import lru_cache

import spacy
from spacy.language import Language

# Neither parser reads named entities, and in the small English models NER has
# its own tok2vec, so leaving it out changes no tag, parse or lemma while it
# would cost more than half of the pipeline's time on captions.
_UNUSED_COMPONENTS = ("ner",)


@lru_cache(maxsize=4)
def load_nlp(spacy_model: str) -> Language:
    """Load ``spacy_model`` (an installed package name or a path) once per process."""
    return spacy.load(spacy_model, exclude=list(_UNUSED_COMPONENTS))
