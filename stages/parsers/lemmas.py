"""Lemmas of caption words, with two repairs to spaCy's rule lemmatiser.

For "riding" the lemmatiser strips "-ing" and finds "rid" in its verb list
before trying "ride" (likewise "hoping", "shining", "stared"). English spelling
settles it: a one-syllable consonant-vowel-consonant stem doubles its last
consonant before "-ing"/"-ed" ("ridding", "hopped"), so a single consonant
there means the stem lost a silent "e". And a noun the tagger misread as a verb
("train on the floor") keeps its own form rather than a verb lemma.
"""

from __future__ import annotations

from spacy.language import Language
from spacy.tokens import Token

from stages.parsers.entities import misread_noun

_VOWELS = frozenset("aeiou")
_NEVER_DOUBLED = frozenset("wxy")
_INFLECTED_VERB_TAGS = frozenset({"VBG", "VBD", "VBN"})


class Lemmas:
    """Lower-cased lemmas; knows the pipeline's verb list to restore a lost "e"."""

    def __init__(self, nlp: Language) -> None:
        self.verbs = _verb_index(nlp)

    def __call__(self, token: Token) -> str:
        if misread_noun(token):
            return token.lower_
        base = token.lemma_.lower()
        if token.tag_ in _INFLECTED_VERB_TAGS:
            return restore_e(token.lower_, base, self.verbs)
        return base


def restore_e(word: str, base: str, verbs: frozenset[str]) -> str:
    """``base`` + "e" when ``word`` is ``base`` + "-ing"/"-ed" on an undoubled CVC stem."""
    suffix = "ing" if word.endswith("ing") else "ed" if word.endswith("ed") else ""
    if not suffix or word[: -len(suffix)] != base or not _one_cvc_syllable(base):
        return base
    return base + "e" if base + "e" in verbs else base


def _one_cvc_syllable(stem: str) -> bool:
    if len(stem) < 3 or any(ch in _VOWELS for ch in stem[:-2]):
        return False
    c1, v, c2 = stem[-3:]
    return c1 not in _VOWELS and v in _VOWELS and c2 not in _VOWELS and c2 not in _NEVER_DOUBLED


def _verb_index(nlp: Language) -> frozenset[str]:
    # The rule lemmatiser keeps its known lemmas in the "lemma_index" table; a
    # pipeline without one (a lookup lemmatiser, a blank test pipeline) gets no repair.
    if "lemmatizer" not in nlp.pipe_names:
        return frozenset()
    lookups = getattr(nlp.get_pipe("lemmatizer"), "lookups", None)
    if lookups is None or not lookups.has_table("lemma_index"):
        return frozenset()
    return frozenset(lookups.get_table("lemma_index").get("verb", []))
