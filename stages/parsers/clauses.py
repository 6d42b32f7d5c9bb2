"""Who does what a verb says: the subject of a verb, a copula or a participle.

Captions leave most subjects implicit — "a man *riding* a horse", "a woman
standing and *holding* a hawk" — so the subject is often found by walking the
parse: up from a participle to the noun it modifies, or along a chain of
coordinated and controlled verbs.
"""

from __future__ import annotations

from spacy.tokens import Token

from stages.parsers.entities import VERB_POS, is_nominal, subjects_of_clause

# Verbs that share their subject with a dependent verb: "a man standing and
# *holding*", "a man trying to *catch*", "a woman standing *holding* her arm".
_SUBJECT_SHARING_DEPS = frozenset({"conj", "xcomp", "advcl"})
_MAX_CHAIN = 4


def verb_subjects(verb: Token, depth: int = 0) -> list[Token]:
    """The argument tokens that do what ``verb`` says (empty when unknown)."""
    subjects = subjects_of_clause(verb)
    if subjects:
        # With an agent ("played by a woman"), the passive subject is the patient.
        if any(c.dep_ == "agent" for c in verb.children):
            return [s for s in subjects if s.dep_ != "nsubjpass"]
        return subjects
    fronted = fronted_subject(verb)
    if fronted:
        return fronted
    if verb.dep_ in ("acl", "relcl") and verb.head.i != verb.i:
        outer = _stacked_participle_owner(verb)
        return [outer if outer is not None else verb.head]  # "a man riding a horse"
    if verb.dep_ in _SUBJECT_SHARING_DEPS and verb.head.pos_ in VERB_POS and depth < _MAX_CHAIN:
        return verb_subjects(verb.head, depth + 1)
    return []


def copula_subjects(copula: Token) -> list[Token]:
    """What a form of "be" says something about; "there are X" says it about X."""
    subjects = subjects_of_clause(copula)
    if subjects:
        return subjects
    if any(c.dep_ == "expl" for c in copula.children):
        return [c for c in copula.children if c.dep_ == "attr"]
    return []


def fronted_subject(verb: Token) -> list[Token]:
    """Without determiners the small model reads "boy holding bear" as a
    modifier "boy" on "holding"; a bare noun right before a subjectless
    participle is its subject."""
    if verb.tag_ != "VBG":
        return []
    return [c for c in verb.lefts if c.dep_ == "npadvmod" and is_nominal(c) and c.i == verb.i - 1]


def passive_patient(verb: Token) -> Token | None:
    """What undergoes a passive verb: its subject, or the noun a participle modifies."""
    patient = next((c for c in verb.children if c.dep_ == "nsubjpass"), None)
    if patient is None and verb.dep_ == "acl" and verb.tag_ == "VBN" and is_nominal(verb.head):
        return verb.head  # "a racket held by a player"
    return patient


def _stacked_participle_owner(participle: Token) -> Token | None:
    """Captions stack participles on their main entity: in "a woman wearing a
    jacket holding a hawk" the woman holds the hawk, though the parser hangs
    "holding" on the jacket; likewise "a surfer in a wetsuit walking"."""
    if participle.dep_ != "acl" or participle.tag_ != "VBG":
        return None
    noun = participle.head
    if noun.dep_ == "dobj" and noun.head.dep_ == "acl" and noun.head.tag_ == "VBG":
        owner = noun.head.head
    elif noun.dep_ == "pobj" and noun.head.lower_ in ("in", "with"):
        owner = noun.head.head
    else:
        return None
    return owner if is_nominal(owner) else None
