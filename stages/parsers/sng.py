"""Bare SceneGraphParser (its spaCy dependency rules), the RLIPv2 paper's setting.

``sng_parser`` parses a sentence by calling its own ``nlp(sentence)``. To batch
captions through the shared pipeline instead, we register a backend that
inherits SceneGraphParser's spaCy rules unchanged but whose ``nlp`` hands back
an already parsed ``Doc``, so the rules run on the ``nlp.pipe`` output.
"""

from __future__ import annotations

from typing import Any

import sng_parser
import sng_parser.backends  # registers the "spacy" backend
from spacy.language import Language
from spacy.tokens import Doc

from stages.parsers.base import CaptionParser, Triplet

_BACKEND_ID = "relfactory-parsed-doc"

# ``sng_parser.backends.spacy_parser.SpacyParser`` is None at module level (its
# registering decorator returns nothing); the registry holds the class itself.
_SpacyBackend: type = sng_parser.Parser._backend_registry["spacy"]


def _parsed_doc(doc: Doc) -> Doc:
    if not isinstance(doc, Doc):
        raise TypeError(f"expected a spaCy Doc from nlp.pipe, got {type(doc).__name__}")
    return doc


class _ParsedDocBackend(_SpacyBackend):
    __identifier__ = _BACKEND_ID

    def __init__(self) -> None:
        # The spaCy backend's __init__ would load a second pipeline; the Doc arrives parsed.
        self.model = None
        self.nlp = _parsed_doc


# register_backend returns None, so it cannot be used as a class decorator.
sng_parser.Parser.register_backend(_ParsedDocBackend)


class SngParser(CaptionParser):
    """SceneGraphParser's rules over the shared spaCy pipeline."""

    name = "sng"

    def __init__(self, nlp: Language) -> None:
        super().__init__(nlp)
        self._sng = sng_parser.Parser(_BACKEND_ID)

    def extract(self, doc: Doc) -> list[Triplet]:
        graph = self._sng.parse(doc)
        entities = graph["entities"]
        return [_triplet(entities[rel["subject"]], rel, entities[rel["object"]]) for rel in graph["relations"]]


def _triplet(subject: dict[str, Any], relation: dict[str, Any], obj: dict[str, Any]) -> Triplet:
    return Triplet(
        subject=subject["span"],
        subject_head=_head(subject),
        relation=relation["relation"],
        relation_lemma=relation["lemma_relation"].lower(),
        object=obj["span"],
        object_head=_head(obj),
    )


def _head(entity: dict[str, Any]) -> str:
    # SceneGraphParser glues compounds onto the head ("tennis racket"); the
    # schema's head is the single head noun, the span keeps the compound.
    return entity["lemma_head"].split(" ")[-1].lower()
