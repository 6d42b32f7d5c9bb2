"""Word-level text normalisation shared by the synonym tables and the matcher.

Matching works on token tuples, never on raw substrings, so "man" can never hit
inside "woman" and "car" never inside "cart". Number is handled by generating
the plural forms of every synonym up front (generating plurals by rule is far
safer than stripping them: "glasses" -> "glass" and "cookies" -> "cooky" are the
classic failures of suffix stripping), so a caption token is looked up as is.
"""

from __future__ import annotations

import re

from pipeline.text_safety import strip_invisible

# A token is a run of letters/digits, optionally with inner apostrophes. Keeping
# "man's" as one token means a possessor ("a man's hat") is never matched as the
# entity itself. Hyphens and slashes split, so "t-shirt" == "t shirt".
_TOKEN = re.compile(r"[^\W_]+(?:'[^\W_]+)*")

_IRREGULAR_PLURALS = {
    "man": "men",
    "woman": "women",
    "person": "people",
    "child": "children",
    "foot": "feet",
    "tooth": "teeth",
    "goose": "geese",
    "mouse": "mice",
    "louse": "lice",
    "ox": "oxen",
    "die": "dice",
    "cactus": "cacti",
    "fungus": "fungi",
    "knife": "knives",
    "wife": "wives",
    "life": "lives",
    "leaf": "leaves",
    "loaf": "loaves",
    "shelf": "shelves",
    "wolf": "wolves",
    "calf": "calves",
    "half": "halves",
    "scarf": "scarves",
    "thief": "thieves",
    "hoof": "hooves",
    "elf": "elves",
}

# Same form in both numbers: no extra surface form is needed.
_INVARIANT = frozenset(
    {"sheep", "deer", "fish", "moose", "bison", "aircraft", "series", "species", "shrimp", "salmon", "trout",
     "squid", "swine", "cattle", "people", "offspring", "news"}
)

# Words ending in "man" whose plural is regular ("humans", not "humen").
_REGULAR_MAN = frozenset({"human", "german", "shaman", "caiman", "ottoman", "talisman", "roman", "walkman"})


def tokenize(text: str) -> tuple[str, ...]:
    """Lower-cased word tokens of ``text``; curly apostrophes count as straight ones."""
    # Invisible controls would split a word ("m\u200ban") or hide it from the table.
    return tuple(_TOKEN.findall(strip_invisible(text).lower().replace("\u2019", "'")))


def class_key(name: str) -> str:
    """Canonical form of a class/category name: "Cigar/Cigarette " -> "cigar cigarette".

    Dataset category strings and table class names are compared through this, so
    "hair_drier", "Hair Drier" and "hair drier" are the same class.
    """
    return " ".join(tokenize(name))


def plural_forms(word: str) -> tuple[str, ...]:
    """Plural surface forms of one lower-case word (possibly several, possibly none).

    Over-generating is harmless here: a form like "pianoes" simply never occurs
    in a caption, whereas a missing form loses a match.
    """
    if word in _IRREGULAR_PLURALS:
        return (_IRREGULAR_PLURALS[word],)
    if word in _INVARIANT or not word.isalpha():
        return ()
    if word.endswith("man") and word not in _REGULAR_MAN:
        return (word[:-3] + "men",)  # fireman -> firemen, policewoman -> policewomen
    if word.endswith(("s", "x", "z", "ch", "sh")):
        return (word + "es",)
    if len(word) > 1 and word.endswith("y") and word[-2] not in "aeiou":
        return (word[:-1] + "ies",)
    if word.endswith("o"):
        return (word + "s", word + "es")  # pianos / potatoes: both spellings exist
    return (word + "s",)


def phrase_forms(tokens: tuple[str, ...]) -> tuple[tuple[str, ...], ...]:
    """The phrase itself and its plurals; only the last word inflects ("hot dogs")."""
    if not tokens:
        return ()
    return (tokens, *(tokens[:-1] + (plural,) for plural in plural_forms(tokens[-1])))
