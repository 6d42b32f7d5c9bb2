"""How many things a caption's noun phrase talks about: grammatical number and stated count.

"a man" is one person, "two men" are two, "men" or "people" are several of
unknown count. The tagger uses this to decide how many box pairs a relation
should go to ("a man holding a bat" is one pair however many people the photo
shows). Read from the phrase as written (``TRIPLET.subject``, e.g. "two young
men") and its head lemma (``TRIPLET.subject_head``, "man"): a head written
differently from its lemma is plural ("men" / "man"), numerals and determiners
give the count. The word lists are closed-class English (numerals, determiners,
irregular plurals), written from grammar, not collected from any dataset.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

Number = Literal["singular", "plural"]

NUMERALS: dict[str, int] = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
    "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16,
    "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20, "dozen": 12,
    "both": 2, "couple": 2, "pair": 2, "twin": 2, "twins": 2,
}
SINGULAR_DETERMINERS = frozenset({"a", "an", "another", "each", "every", "this", "that", "single", "lone"})
PLURAL_WORDS = frozenset({
    "these", "those", "several", "many", "multiple", "various", "numerous", "few", "lots", "lot",
    "group", "crowd", "bunch", "herd", "flock", "team", "family", "line", "row", "pack", "swarm", "school",
    "fleet", "collection", "stack", "pile", "number", "variety", "assortment", "cluster",
})
# Nouns whose plural is written like the singular: bare, they say nothing.
INVARIANT_NOUNS = frozenset({"sheep", "deer", "fish", "moose", "bison", "aircraft", "series", "species", "buffalo"})
# Nouns that are plural in meaning though a lemmatiser may leave them unchanged.
PLURAL_NOUNS = frozenset({"people", "men", "women", "children", "kids", "folks", "crowd", "family", "team", "group",
                          "couple", "police", "cattle", "persons", "players", "students"})
_WORD = re.compile(r"[a-z0-9]+")


@dataclass(frozen=True)
class EntityNumber:
    """``number``: grammatical number, None when the phrase does not say; ``count``: how many, None unless stated
    (a singular phrase states one)."""

    number: Number | None = None
    count: int | None = None


UNKNOWN = EntityNumber()


def entity_number(phrase: str | None, head: str | None = None) -> EntityNumber:
    """The number and count a noun phrase states; :data:`UNKNOWN` when it has no words."""
    words = _WORD.findall((phrase or "").lower().replace("'s", ""))
    if not words:
        return UNKNOWN
    for word in words:
        if word.isdigit() and 0 < int(word) < 1000:
            count = int(word)
            return EntityNumber("singular" if count == 1 else "plural", count)
        if word in NUMERALS:
            count = NUMERALS[word]
            return EntityNumber("singular" if count == 1 else "plural", count)
    surface = words[-1]
    lemma = (head or "").lower().strip()
    if surface in PLURAL_NOUNS or any(word in PLURAL_WORDS for word in words[:-1]):
        return EntityNumber("plural", None)
    if surface in INVARIANT_NOUNS:
        return EntityNumber("singular", 1) if words[0] in SINGULAR_DETERMINERS else UNKNOWN
    if lemma and surface != lemma and not lemma.endswith(surface):
        # "men" / "man", "horses" / "horse": the written head is an inflected plural.
        return EntityNumber("plural", None)
    if not lemma and surface.endswith("s") and not surface.endswith("ss"):
        return EntityNumber("plural", None)
    return EntityNumber("singular", 1)


def combine(numbers: Iterable[EntityNumber]) -> EntityNumber:
    """One reading from several captions of the same entity.

    The majority number wins (a tie goes to plural: wrongly allowing a second
    pair costs less than dropping a true one); the count is the one most
    captions of that number state (ties to the larger), or None when none does.
    """
    known = [n for n in numbers if n.number is not None]
    if not known:
        return UNKNOWN
    votes = Counter(n.number for n in known)
    number: Number = "plural" if votes["plural"] >= votes["singular"] else "singular"
    counts = Counter(n.count for n in known if n.number == number and n.count is not None)
    if not counts:
        return EntityNumber(number, 1 if number == "singular" else None)
    count = max(counts, key=lambda c: (counts[c], c))
    return EntityNumber(number, count)
