"""Which noun an argument position stands for, and how the caption writes it.

The dependency parse points a verb or preposition at one token; the entity a
reader sees can be elsewhere: "metal poles *that* make a fence" (the relative
pronoun stands for "poles"), "a *bunch* of birds swimming" (the quantity noun
is transparent), "two guys and a dog" (coordination names two entities), "a
bed with a laptop on *it*" (the pronoun stands for "bed").

spaCy makes a fresh ``Token`` object on every access, so tokens are compared by
index (``.i``), never with ``is``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from spacy.tokens import Token

from stages.parsers.lexicon import COMPOUND_PREPOSITIONS, QUANTITY_NOUNS, RELATIVE_PRONOUNS, THING_PRONOUNS

NOMINAL_POS = frozenset({"NOUN", "PROPN"})
VERB_POS = frozenset({"VERB", "AUX"})
SUBJECT_DEPS = frozenset({"nsubj", "nsubjpass"})

# Dependents that belong to a noun phrase's written span, left of its head.
PREMODIFIER_DEPS = frozenset(
    {"det", "predet", "amod", "compound", "nummod", "poss", "nmod", "quantmod", "advmod", "npadvmod"}
)
# Dependents only a verb has; a "verb" with none of them may be a misread noun.
_VERBAL_DEPS = frozenset(
    {"nsubj", "nsubjpass", "dobj", "aux", "auxpass", "ccomp", "xcomp", "expl", "prt", "dative", "attr",
     "acomp", "advcl", "neg"}
)


@dataclass(frozen=True)
class Entity:
    head: Token  # the noun the triplet is about: "birds"
    outer: Token  # where its written phrase is anchored: "bunch" in "a bunch of birds"

    @property
    def text(self) -> str:
        return self.head.doc[_left_edge(self.outer) : self.head.i + 1].text


def is_nominal(token: Token) -> bool:
    return token.pos_ in NOMINAL_POS or misread_noun(token)


def misread_noun(token: Token) -> bool:
    """A noun the tagger read as a verb.

    Captions are noun phrases, so "train on the floor" is not an order to
    train; and a bare gerund object ("flags on building") names a thing.
    """
    if token.dep_ == "ROOT" and token.tag_ in ("VB", "VBP"):
        return not any(_verbal(c) for c in token.children) and all(c.dep_ in PREMODIFIER_DEPS for c in token.lefts)
    if token.dep_ == "pcomp" and token.tag_ == "VBG":
        return not any(_verbal(c) for c in token.children)
    return False


def entities_of(argument: Token) -> list[Entity]:
    """The entities an argument token denotes (none for pronouns and non-nouns)."""
    token = antecedent(argument)
    found = []
    for conjunct in [token, *coordinated(token)]:
        entity = through_quantity(conjunct)
        if is_nominal(entity.head):
            found.append(entity)
    return found


def antecedent(token: Token) -> Token:
    """What a pronoun stands for ("poles" for the "that" of "poles that make"), else ``token``."""
    if token.lower_ in RELATIVE_PRONOUNS and token.head.dep_ == "relcl" and token.head.head.i != token.head.i:
        return token.head.head
    if token.lower_ in THING_PRONOUNS and token.dep_ == "pobj":
        return _referent(token) or token
    return token


def coordinated(token: Token) -> Iterator[Token]:
    """Conjuncts below ``token``: "dog" for "guys" in "two guys and a dog"."""
    for child in token.children:
        if child.dep_ == "conj" and (is_nominal(child) or child.lower_ in RELATIVE_PRONOUNS):
            yield child
            yield from coordinated(child)


def shared_coordination(token: Token) -> list[Token]:
    """Earlier conjuncts that share a modifier the parser hung on the last one.

    In "two guys and a dog on the bed" the parser attaches "on the bed" to
    "dog"; "guys" has no modifier of its own, so the phrase covers both. A
    conjunct with its own phrase ("a man in a hat and a woman in a dress")
    keeps to itself.
    """
    shared = []
    while token.dep_ == "conj" and is_nominal(token.head):
        token = token.head
        if any(c.dep_ in ("prep", "acl", "relcl") for c in token.rights):
            break
        shared.append(token)
    return shared


def through_quantity(token: Token) -> Entity:
    """Skip quantity nouns: "a bunch of birds" → the birds."""
    head = token
    for _ in range(3):  # "a group of a pair of ..." nests rarely; bound the walk
        of_object = quantity_object(head)
        if of_object is None:
            break
        head = of_object
    return Entity(head, token)


def quantity_object(token: Token) -> Token | None:
    """X in "<quantity noun> of X", else None."""
    if token.lemma_.lower() not in QUANTITY_NOUNS and token.lower_ not in QUANTITY_NOUNS:
        return None
    for prep in token.rights:
        if prep.dep_ == "prep" and prep.lower_ == "of":
            for obj in prep.children:
                if obj.dep_ == "pobj" and is_nominal(obj):
                    return obj
    return None


def subjects_of_clause(verb: Token) -> list[Token]:
    return [c for c in verb.children if c.dep_ in SUBJECT_DEPS]


def _referent(pronoun: Token) -> Token | None:
    # "a bed with a laptop on it": the pronoun cannot be the noun its own
    # preposition hangs on (the laptop), so it is the next noun up (the bed),
    # or, past a verb, that verb's subject ("the plate has soup on it").
    governor = pronoun.head.head
    for ancestor in governor.ancestors:
        if is_nominal(ancestor):
            return ancestor
        if ancestor.pos_ in VERB_POS:
            return next(iter(subjects_of_clause(ancestor)), None)
    if governor.pos_ in VERB_POS:
        return next(iter(subjects_of_clause(governor)), None)
    return None


def _verbal(child: Token) -> bool:
    if child.dep_ != "prt":
        return child.dep_ in _VERBAL_DEPS
    # "gravel in between the tracks": a particle opening a compound preposition
    # is no sign of a verb.
    following = child.nbor(1) if child.i + 1 < len(child.doc) else None
    return following is None or (child.lower_, following.lower_) not in COMPOUND_PREPOSITIONS


def _left_edge(token: Token) -> int:
    edge = token.i
    for child in token.lefts:
        if child.dep_ in PREMODIFIER_DEPS:
            edge = min(edge, child.left_edge.i)
    return edge
