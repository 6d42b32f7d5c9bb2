"""relfactory's caption parser: dependency-pattern rules over spaCy parses.

It keeps SceneGraphParser's idea (read relations off the dependency tree) and
fixes what goes wrong on real captions: copulas ("peppers are on the pizza"),
quantity nouns ("a bunch of birds"), verb + preposition relations ("tied to"),
coordination ("two guys and a dog"), relative pronouns ("poles that make a
fence"), complex prepositions ("in front of", "at the corner of"), genitives,
and a few systematic misparses of determiner-less captions.
"""

from __future__ import annotations

from spacy.language import Language
from spacy.tokens import Doc

from stages.parsers.base import CaptionParser, Triplet
from stages.parsers.entities import Entity, entities_of, shared_coordination
from stages.parsers.lemmas import Lemmas
from stages.parsers.relations import Fact, Patterns, Phrase


class RulesParser(CaptionParser):
    """Relation patterns (:mod:`.relations`) read off each parse, then resolved to entities (:mod:`.entities`)."""

    name = "rules"

    def __init__(self, nlp: Language) -> None:
        super().__init__(nlp)
        self.lemmas = Lemmas(nlp)
        self.patterns = Patterns(self.lemmas)

    def extract(self, doc: Doc) -> list[Triplet]:
        triplets = []
        for fact in sorted(self.patterns.facts(doc), key=lambda f: f.anchor):
            subjects, objects = _arguments(fact)
            for subject in subjects:
                for obj in objects:
                    if subject.head.i != obj.head.i:
                        triplets.append(self._triplet(subject, fact.relation, obj))
        return triplets

    def _triplet(self, subject: Entity, relation: Phrase, obj: Entity) -> Triplet:
        return Triplet(
            subject=subject.text,
            subject_head=self.lemmas(subject.head),
            relation=relation.text,
            relation_lemma=relation.lemma,
            object=obj.text,
            object_head=self.lemmas(obj.head),
        )


def _arguments(fact: Fact) -> tuple[list[Entity], list[Entity]]:
    subjects = entities_of(fact.subject)
    objects = entities_of(fact.object)
    if fact.subject.i < fact.anchor:
        shared = [e for t in shared_coordination(fact.subject) for e in entities_of(t)[:1]]
        subjects = shared + subjects
        if fact.anchor < fact.object.i:
            # "a man in black shirt and shorts": a subject conjunct after the
            # object coordinates with the object, whatever the parser attached.
            late = [e for e in subjects if e.head.i > fact.object.i]
            if late:
                subjects = [e for e in subjects if e.head.i < fact.object.i]
                objects = objects + late
    return subjects, objects
