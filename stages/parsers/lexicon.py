"""Closed-class English words the rules need, written from grammar and common
knowledge, not collected from any dataset.

Each set is a small grammatical or semantic class (quantity nouns, region
nouns, prepositions of place ...), the kind of list a grammar book enumerates.
"""

from __future__ import annotations

# Quantity and collective nouns are transparent in "N of X": in "a bunch of
# birds swimming" the swimmers are the birds, so X is the entity.
QUANTITY_NOUNS: frozenset[str] = frozenset(
    {
        "amount", "array", "assortment", "batch", "bevy", "bit", "bunch", "bundle", "chunk", "cloud",
        "cluster", "clump", "collection", "column", "couple", "crowd", "dozen", "fleet", "flock", "group",
        "handful", "heap", "herd", "kind", "line", "lot", "lots", "mass", "number", "pack", "pair", "piece",
        "pile", "plenty", "range", "row", "school", "sea", "series", "set", "slice", "sort", "stack",
        "string", "swarm", "team", "ton", "type", "variety",
    }
)

# Containers read "N of X" the other way round: "a cup of coffee" is a cup
# holding coffee, not coffee owning a cup.
CONTAINER_NOUNS: frozenset[str] = frozenset(
    {
        "bag", "barrel", "basket", "bin", "bottle", "bowl", "box", "bucket", "can", "carafe", "cart",
        "carton", "case", "container", "crate", "cup", "dish", "glass", "jar", "jug", "mug", "pail", "pan",
        "pitcher", "plate", "platter", "pot", "sack", "tin", "tray", "tub", "vase",
    }
)

# Region nouns build complex prepositions: "in front of", "on top of",
# "at the corner of", "on the left side of". Inside one, the region is not an
# entity of its own.
REGION_NOUNS: frozenset[str] = frozenset(
    {
        "back", "base", "bottom", "center", "centre", "corner", "edge", "end", "front", "half", "inside",
        "left", "middle", "outside", "part", "rear", "right", "side", "surface", "tip", "top", "underside",
    }
)

# Two-word prepositions whose first word the parser tends to split off as a
# particle: "rocks *in between* the tracks".
COMPOUND_PREPOSITIONS: frozenset[tuple[str, str]] = frozenset(
    {("in", "between"), ("up", "to"), ("out", "of"), ("away", "from"), ("off", "of"), ("out", "from")}
)

# Prepositions of place. After a verb with a direct object they locate the
# object, not the doer: "holding a knife *in* the air" → (knife, in, air).
LOCATIVE_PREPOSITIONS: frozenset[str] = frozenset(
    {
        "above", "across", "against", "along", "alongside", "amid", "among", "around", "atop", "behind",
        "below", "beneath", "beside", "between", "in", "inside", "into", "near", "on", "onto", "over",
        "through", "under", "underneath", "upon", "within",
    }
)

# Garments: "a man in a red shirt" is a man wearing one.
GARMENT_NOUNS: frozenset[str] = frozenset(
    {
        "apron", "attire", "backpack", "bandana", "bathrobe", "beanie", "belt", "bikini", "blazer", "blouse",
        "boot", "bracelet", "cap", "cape", "cardigan", "cleat", "cloak", "clothes", "clothing", "coat",
        "costume", "dress", "earring", "eyeglasses", "gear", "glasses", "glove", "goggle", "gown", "hat",
        "headband", "heel", "helmet", "hood", "hoodie", "jacket", "jean", "jeans", "jersey", "jumpsuit",
        "khaki", "khakis", "kimono", "legging", "loafer", "mask", "mitten", "necklace", "outfit", "overall",
        "pajama", "pant", "pants", "parka", "polo", "poncho", "raincoat", "robe", "sandal", "scarf", "shirt",
        "shoe", "short", "shorts", "skirt", "sleeve", "slipper", "sneaker", "sock", "stocking", "suit",
        "sunglass", "sunglasses", "sweater", "sweatshirt", "swimsuit", "t-shirt", "tank", "tee", "tie",
        "tights", "top", "trouser", "trousers", "tshirt", "turtleneck", "tuxedo", "uniform", "vest", "visor",
        "wetsuit", "windbreaker",
    }
)

RELATIVE_PRONOUNS: frozenset[str] = frozenset({"that", "which", "who", "whom", "whose"})

# Personal pronouns that can stand for a thing named earlier in the caption.
THING_PRONOUNS: frozenset[str] = frozenset({"it", "them"})
