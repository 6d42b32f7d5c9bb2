"""Map a caption entity (span text + head lemma) to a detection class.

All synonyms are expanded once into a dict ``token tuple -> class`` (with their
plurals), so matching an entity is a handful of dict probes over slices of its
tokens: no regex per class, no scan over the vocabulary.

Which entry wins when two classes claim the same surface form is decided by a
rank, best first: a higher *layer* (built-in table < user file < dataset
categories), then the *kind* of form (a class's own name < a written synonym <
a generated plural), then table order. Equal-rank clashes are recorded in
:attr:`EntityMatcher.conflicts` so the built-in tables can be tested clash-free.

A synonym written as ``"!form"`` removes ``form`` (and its plurals) from that
class in every layer: that is how a user file takes a built-in synonym away.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache

from stages.vocab.text import class_key, phrase_forms, plural_forms, tokenize

Layer = Mapping[str, Sequence[str]]

_KIND_NAME, _KIND_SYNONYM, _KIND_PLURAL = 0, 1, 2

# Heads that name a quantity of something: the entity is what follows "of"
# ("a herd of zebras", "a pair of scissors", "a family of ducks"), even when the
# head is itself a synonym ("family" -> person).
COLLECTIVE_HEADS = frozenset(
    {"group", "couple", "pair", "bunch", "herd", "flock", "crowd", "team", "pack", "lot", "lots", "number",
     "set", "pile", "stack", "row", "line", "bundle", "collection", "variety", "assortment", "slice", "piece",
     "bit", "half", "kind", "type", "sort", "army", "fleet", "swarm", "school", "litter", "family", "dozen",
     "handful", "few", "pod", "troop", "cluster", "array", "selection", "series"}
)

# Containers and parts: the head wins when it is a class ("a bowl of broccoli"
# is the bowl), otherwise the entity is what follows "of" ("a tray of donuts",
# "the back of a truck").
CONTAINER_HEADS = frozenset(
    {"plate", "tray", "box", "basket", "bag", "bucket", "carton", "crate", "platter", "dish", "jar", "can",
     "bowl", "cup", "glass", "deck", "top", "side", "back", "front", "edge", "end", "middle", "rear", "inside",
     "bed", "field", "display", "case", "pot", "container", "bottle", "mug", "sack", "pan", "cart", "shelf"}
)

_OF_HEADS = COLLECTIVE_HEADS | CONTAINER_HEADS


class EntityMatcher:
    """Token-tuple lookup from synonyms to class keys (see :func:`class_key`)."""

    def __init__(self, layers: Sequence[Layer], cache_size: int = 65_536) -> None:
        self.layers: tuple[Layer, ...] = tuple(layers)
        self.names: dict[str, str] = {}  # class key -> display name as first written
        self.conflicts: list[tuple[str, str, str]] = []  # (surface form, kept class, dropped class)
        self._lookup: dict[tuple[str, ...], str] = {}
        self._build()
        self.max_len = max((len(form) for form in self._lookup), default=0)
        self._match_cached = lru_cache(maxsize=cache_size)(self._match)

    # -- construction -----------------------------------------------------------------

    def _build(self) -> None:
        excluded: dict[str, set[tuple[str, ...]]] = {}
        for layer in self.layers:
            for name, synonyms in layer.items():
                key = class_key(name)
                if not key:
                    continue
                self.names.setdefault(key, name)
                for syn in synonyms:
                    if syn.startswith("!"):
                        excluded.setdefault(key, set()).update(phrase_forms(tokenize(syn[1:])))

        ranked: dict[tuple[str, ...], tuple[tuple[int, int, int], str]] = {}
        order = 0
        for depth, layer in enumerate(self.layers):
            for name, synonyms in layer.items():
                key = class_key(name)
                if not key:
                    continue
                order += 1
                banned = excluded.get(key, set())
                entries = [(tokenize(name), _KIND_NAME)]
                entries += [(tokenize(s), _KIND_SYNONYM) for s in synonyms if not s.startswith("!")]
                for tokens, kind in entries:
                    for i, form in enumerate(phrase_forms(tokens)):
                        if form in banned:
                            continue
                        rank = (-depth, _KIND_PLURAL if i else kind, order)
                        self._offer(ranked, form, rank, key)
        self._lookup = {form: key for form, (_, key) in ranked.items()}

    def _offer(self, ranked: dict, form: tuple[str, ...], rank: tuple[int, int, int], key: str) -> None:
        held = ranked.get(form)
        if held is None:
            ranked[form] = (rank, key)
            return
        held_rank, held_key = held
        if held_key == key:
            if rank < held_rank:
                ranked[form] = (rank, key)
            return
        if rank[:2] == held_rank[:2]:
            winner, loser = (key, held_key) if rank < held_rank else (held_key, key)
            self.conflicts.append((" ".join(form), winner, loser))
        if rank < held_rank:
            ranked[form] = (rank, key)

    def with_categories(self, names: Iterable[str]) -> "EntityMatcher":
        """This matcher plus, as the top layer, every category it does not know yet.

        A dataset's own category name is the strongest evidence there is, so it
        overrides any synonym of another class it collides with.
        """
        extra = {name: [] for name in sorted(set(names)) if class_key(name) and class_key(name) not in self.names}
        if not extra:
            return self
        return EntityMatcher([*self.layers, extra])

    # -- matching ---------------------------------------------------------------------

    def __contains__(self, key: str) -> bool:
        return key in self.names

    def lookup(self, tokens: Sequence[str]) -> str | None:
        """The class of exactly this token sequence, if any."""
        return self._lookup.get(tuple(tokens))

    def match(self, span: str | None, head: str | None = None) -> str | None:
        """Class key of the entity ``span`` whose head lemma is ``head``, or None.

        1. the longest synonym in the span covering the head token ("hot dog"
           beats "dog", "tennis racket" beats "racket");
        2. else, when the head does not occur in the span, the head lemma alone;
        3. else, for a container/part head ("a tray of donuts"), the longest
           synonym after its "of", rightmost first.

        A collective head ("a herd of zebras") tries step 3 first.
        """
        return self._match_cached(span or "", head or "")

    def _match(self, span: str, head: str) -> str | None:
        tokens = tokenize(span)
        head_tokens = tokenize(head)
        if not head_tokens and tokens:
            head_tokens = tokens[-1:]  # English noun phrases are head-final
        if not head_tokens:
            return None
        head_word = head_tokens[-1]
        complement = _of_complement(tokens) if head_word in _OF_HEADS else ()
        if complement and head_word in COLLECTIVE_HEADS:
            found = self._longest_anywhere(complement)
            if found is not None:
                return found
        position = _head_position(tokens, head_word)
        if position is not None:
            found = self._longest_covering(tokens, position)
            if found is not None:
                return found
        else:
            found = self.lookup(head_tokens)
            if found is not None:
                return found
        return self._longest_anywhere(complement) if complement else None

    def _longest_covering(self, tokens: tuple[str, ...], position: int) -> str | None:
        n = len(tokens)
        for length in range(min(self.max_len, n), 0, -1):
            for start in range(max(0, position - length + 1), min(position, n - length) + 1):
                found = self._lookup.get(tokens[start : start + length])
                if found is not None:
                    return found
        return None

    def _longest_anywhere(self, tokens: tuple[str, ...]) -> str | None:
        n = len(tokens)
        for length in range(min(self.max_len, n), 0, -1):
            for start in range(n - length, -1, -1):
                found = self._lookup.get(tokens[start : start + length])
                if found is not None:
                    return found
        return None


def _of_complement(tokens: tuple[str, ...]) -> tuple[str, ...]:
    """The tokens after the last "of" ("a group of young men" -> ("young", "men"))."""
    if "of" not in tokens:
        return ()
    return tokens[len(tokens) - tokens[::-1].index("of") :]


def _head_position(tokens: tuple[str, ...], head: str) -> int | None:
    """Index of the last token that is the head lemma or one of its plurals."""
    forms = {head, *plural_forms(head)}
    for i in range(len(tokens) - 1, -1, -1):
        if tokens[i] in forms:
            return i
    return None
