"""Dependency patterns that state a relation between two argument tokens.

Each pattern reads one anchor in the parse and yields :class:`Fact` s whose
subject and object are still argument tokens; the parser turns them into
entities afterwards (:mod:`stages.parsers.entities`). The patterns:

* prepositional phrases on a noun, a verb or a copula: "a cat *on* a bed",
  "boats *tied to* a dock", "green peppers *are on* the pizza", including
  complex prepositions ("*in front of*", "*at the corner of*", "*next to*");
* a verb and its direct object: "a man *riding* a horse", with particles
  ("*sticking* its tongue *out*") and passives with an agent;
* genitives: "the man's head", "the mane of the horse" → (man, have, head),
  with containers the other way round ("a cup of coffee" → (cup, have, coffee)).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from spacy.tokens import Doc, Token

from stages.parsers.clauses import copula_subjects, fronted_subject, passive_patient, verb_subjects
from stages.parsers.entities import VERB_POS, antecedent, is_nominal, quantity_object, subjects_of_clause
from stages.parsers.lemmas import Lemmas
from stages.parsers.lexicon import (
    COMPOUND_PREPOSITIONS,
    CONTAINER_NOUNS,
    GARMENT_NOUNS,
    LOCATIVE_PREPOSITIONS,
    QUANTITY_NOUNS,
    REGION_NOUNS,
)

# A word above a preposition that forms a two-word preposition with it:
# "*next* to", "*close* to", "*out* of", "*full* of".
_PREPOSITION_HEAD_DEPS = frozenset({"advmod", "prep", "prt", "acomp", "amod", "npadvmod"})
_PREPOSITION_HEAD_POS = frozenset({"ADV", "ADP", "ADJ", "PART"})
_DETERMINER_TAGS = frozenset({"DT", "PDT", "PRP$", "WDT"})


@dataclass(frozen=True)
class Phrase:
    text: str  # as the caption says it: "sitting on the left side of"
    lemma: str  # lemmas, determiners dropped: "sit on left side of"


@dataclass(frozen=True)
class Fact:
    subject: Token
    relation: Phrase
    object: Token
    anchor: int  # index of the token that states it; orders facts as read


HAS = Phrase("has", "have")
WEARING = Phrase("wearing", "wear")


class Patterns:
    """All relation patterns, over one pipeline's lemmas."""

    def __init__(self, lemmas: Lemmas) -> None:
        self.lemma = lemmas

    def facts(self, doc: Doc) -> Iterator[Fact]:
        for token in doc:
            if token.dep_ == "prep":
                yield from self.prepositional(token)
            if token.pos_ in VERB_POS:
                yield from self.verbal(token)
            if token.dep_ == "poss" and is_nominal(token) and is_nominal(token.head):
                yield Fact(token, HAS, token.head, token.i)  # "the man's head"
            if token.lemma_ == "have" and token.dep_ == "aux":
                yield from self.have_misread_as_aux(token)

    # -- prepositional phrases -------------------------------------------------

    def prepositional(self, prep: Token) -> Iterator[Fact]:
        obj = _pobj(prep)
        if obj is None or _inside_complex_preposition(prep):
            return
        words = [prep]
        region_of = _region_of(obj)
        if region_of is not None:
            # "on the left side of the road": the road is the object; the region
            # and its modifiers join the preposition.
            words = list(prep.doc[prep.i : region_of.i + 1])
            obj = _pobj(region_of)
        governor = _low_attachment(prep, prep.head)
        while _heads_preposition(governor):
            words.insert(0, governor)  # "next to", "out of"
            governor = governor.head
        opener = _compound_opener(prep)
        if opener is not None:
            words.insert(0, opener)  # "in between"
        if is_nominal(governor) or antecedent(governor).i != governor.i:
            yield from self._on_noun(governor, words, obj, prep)
        elif governor.pos_ in VERB_POS:
            yield from self._on_verb(governor, words, obj, prep)

    def _on_noun(self, noun: Token, words: list[Token], obj: Token, prep: Token) -> Iterator[Fact]:
        said = [w.lower_ for w in words]
        if said == ["of"]:
            yield from _genitive_of(noun, obj, prep)
        elif said == ["in"] and obj.lemma_.lower() in GARMENT_NOUNS:
            yield Fact(noun, WEARING, obj, prep.i)  # "a man in a red shirt"
        else:
            yield Fact(noun, self.phrase(words), obj, prep.i)

    def _on_verb(self, verb: Token, words: list[Token], obj: Token, prep: Token) -> Iterator[Fact]:
        if verb.lemma_ == "be":
            # The copula adds nothing: "peppers are on the pizza" → (pepper, on, pizza).
            for subject in copula_subjects(verb):
                yield Fact(subject, self.phrase(words), obj, prep.i)
            return
        objects = [c for c in verb.children if c.dep_ == "dobj"]
        if objects and words[0].lower_ in LOCATIVE_PREPOSITIONS:
            # A place after a direct object locates the object: "holding a
            # knife in the air" → (knife, in, air).
            for located in objects:
                yield Fact(located, self.phrase(words), obj, prep.i)
            return
        # Particles drop out: "lying down on the grass" is lying on it.
        phrase = self.phrase([verb, *words])
        for subject in verb_subjects(verb):
            yield Fact(subject, phrase, obj, prep.i)

    # -- verbs and their objects -----------------------------------------------

    def verbal(self, verb: Token) -> Iterator[Fact]:
        if verb.lemma_ == "be":
            return
        objects = [c for c in verb.children if c.dep_ == "dobj"]
        words = [verb, *(c for c in verb.children if c.dep_ == "prt")]
        if not objects and _object_gap(verb):
            # "the blazer the man is wearing", "the sky the kites are flying in"
            objects = [verb.head]
            words += _stranded_prepositions(verb)
        if not objects and verb.dep_ == "amod" and is_nominal(verb.head) and fronted_subject(verb):
            objects = [verb.head]  # "lady holding vase", read as a "holding vase"
        if objects:
            phrase = self.phrase(words)
            for subject in verb_subjects(verb):
                for obj in objects:
                    yield Fact(subject, phrase, obj, verb.i)
        agent = next((_pobj(c) for c in verb.children if c.dep_ == "agent"), None)
        patient = passive_patient(verb)
        if agent is not None and patient is not None:
            yield Fact(agent, self.phrase([verb]), patient, verb.i)  # "played by a woman"

    def have_misread_as_aux(self, have: Token) -> Iterator[Fact]:
        """"the building has clock": the small model reads "has" as an auxiliary
        of the next word. A perfect needs a participle; a noun there means
        "has" is the main verb."""
        obj = have.head
        if obj.tag_ in ("VBN", "VBD") or not is_nominal(obj):
            return
        for subject in subjects_of_clause(obj):
            yield Fact(subject, Phrase(have.text, "have"), obj, have.i)

    # -- phrases ---------------------------------------------------------------

    def phrase(self, words: list[Token]) -> Phrase:
        ordered = sorted({w.i: w for w in words}.values(), key=lambda w: w.i)
        return Phrase(
            " ".join(w.text for w in ordered),
            " ".join(self.lemma(w) for w in ordered if w.tag_ not in _DETERMINER_TAGS),
        )


def _genitive_of(noun: Token, obj: Token, prep: Token) -> Iterator[Fact]:
    # "N of X" is transparent for quantities ("a bunch of birds") and a
    # genitive otherwise: "the mane of the horse" says the horse has a mane,
    # "a cup of coffee" that the cup holds coffee.
    if noun.lemma_.lower() in QUANTITY_NOUNS or quantity_object(noun) is not None:
        return
    if noun.lemma_.lower() in CONTAINER_NOUNS:
        yield Fact(noun, HAS, obj, prep.i)
    else:
        yield Fact(obj, HAS, noun, prep.i)


def _pobj(prep: Token) -> Token | None:
    return next((c for c in prep.children if c.dep_ == "pobj"), None)


def _region_of(obj: Token) -> Token | None:
    """The "of" of a complex preposition when ``obj`` is a region noun ("front" in "in front of")."""
    if obj.lemma_.lower() not in REGION_NOUNS or obj.dep_ != "pobj":
        return None
    return next(
        (c for c in obj.children if c.dep_ == "prep" and c.lower_ in ("of", "to") and _pobj(c) is not None), None
    )


def _inside_complex_preposition(prep: Token) -> bool:
    # The "of" in "in front of" was read together with "in"; reading it again
    # would state (front, of, X).
    region = prep.head
    if region.dep_ != "pobj" or region.head.dep_ != "prep":
        return False
    of = _region_of(region)
    return of is not None and of.i == prep.i


def _heads_preposition(token: Token) -> bool:
    return (
        token.dep_ in _PREPOSITION_HEAD_DEPS
        and token.pos_ in _PREPOSITION_HEAD_POS
        and _pobj(token) is None
        and token.head.i != token.i
    )


def _compound_opener(prep: Token) -> Token | None:
    """The particle "in" of "in between", split off by the parser."""
    if prep.i == 0:
        return None
    before = prep.nbor(-1)
    opens = (before.lower_, prep.lower_) in COMPOUND_PREPOSITIONS
    return before if opens and before.dep_ in ("prt", "prep") and _pobj(before) is None else None


def _low_attachment(prep: Token, governor: Token) -> Token:
    """Stacked phrases nest: "pizza on a plate on the table" puts the plate on
    the table. spaCy hangs both phrases on the first noun; re-hang a place
    phrase on the noun that ends the phrase right before it."""
    if not is_nominal(governor) or prep.lower_ not in LOCATIVE_PREPOSITIONS:
        return governor
    for earlier in governor.children:
        if earlier.dep_ == "prep" and earlier.i < prep.i:
            inner = _pobj(earlier)
            if inner is not None and is_nominal(inner) and inner.right_edge.i == prep.i - 1:
                return inner
    return governor


def _object_gap(verb: Token) -> bool:
    # "the blazer the older man is wearing": a relative clause with a real
    # subject and no object has its object in the noun it modifies.
    if verb.dep_ != "relcl" or not is_nominal(verb.head):
        return False
    subjects = subjects_of_clause(verb)
    full_prep = any(c.dep_ == "prep" and _pobj(c) is not None for c in verb.children)
    return bool(subjects) and not full_prep and all(is_nominal(s) for s in subjects)


def _stranded_prepositions(verb: Token) -> list[Token]:
    # "the sky the kites are flying in": the preposition lost its object to the
    # noun the clause modifies.
    return [c for c in verb.rights if c.pos_ == "ADP" and c.dep_ in ("prep", "advmod", "prt") and not any(c.children)]
