"""Class vocabularies: synonym tables for COCO and Objects365 and the entity matcher.

    >>> from stages.vocab import build_matcher
    >>> m = build_matcher("coco")
    >>> m.match("two young men", "man"), m.match("a hot dog", "dog"), m.match("a woman", "woman")
    ('person', 'hot dog', 'person')
"""

from stages.vocab.matcher import COLLECTIVE_HEADS, CONTAINER_HEADS, EntityMatcher
from stages.vocab.tables import (
    VOCABULARIES,
    SynonymTable,
    build_matcher,
    load_table,
    matcher_for,
    matcher_with_categories,
    read_synonyms_file,
    vocabulary_name,
)
from stages.vocab.text import class_key, phrase_forms, plural_forms, tokenize

__all__ = [
    "COLLECTIVE_HEADS",
    "CONTAINER_HEADS",
    "VOCABULARIES",
    "EntityMatcher",
    "SynonymTable",
    "build_matcher",
    "class_key",
    "load_table",
    "matcher_for",
    "matcher_with_categories",
    "phrase_forms",
    "plural_forms",
    "read_synonyms_file",
    "tokenize",
    "vocabulary_name",
]
