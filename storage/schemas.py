"""Parquet schemas of every stage's output: the factory's data contract.

Each stage writes rows matching exactly one schema here; readers validate a
file's schema against it before use (a foreign or stale file is rejected rather
than half-understood). Boxes are COCO-style ``x, y, w, h`` in pixels.
"""

from __future__ import annotations

import pyarrow as pa

OBJECT = pa.struct(
    [
        ("object_id", pa.int64()),
        ("category_id", pa.int32()),
        ("category", pa.string()),
        ("x", pa.float64()),
        ("y", pa.float64()),
        ("w", pa.float64()),
        ("h", pa.float64()),
    ]
)

INGEST = pa.schema(
    [
        ("image_id", pa.int64()),
        ("file_name", pa.string()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("dataset", pa.string()),
        ("data_split", pa.string()),
        ("objects", pa.list_(OBJECT)),
    ]
)

CAPTION = pa.schema(
    [
        ("image_id", pa.int64()),
        ("caption_index", pa.int32()),
        ("caption", pa.string()),
        ("captioner", pa.string()),
        ("model_id", pa.string()),
        # JSON of the decoding parameters (top_p, beams, min/max tokens ...).
        ("decoding", pa.string()),
        ("seed", pa.int64()),
    ]
)

TRIPLET = pa.struct(
    [
        ("subject", pa.string()),  # entity span as written: "two young men"
        ("subject_head", pa.string()),  # lemma of its head noun: "man"
        ("relation", pa.string()),  # natural phrase: "sitting on"
        ("relation_lemma", pa.string()),  # "sit on"
        ("object", pa.string()),
        ("object_head", pa.string()),
    ]
)

PARSE = pa.schema(
    [
        ("image_id", pa.int64()),
        ("caption_index", pa.int32()),
        ("caption", pa.string()),
        ("parser", pa.string()),
        ("triplets", pa.list_(TRIPLET)),
    ]
)

PROPOSAL = pa.struct(
    [
        ("relation", pa.string()),
        ("caption_indices", pa.list_(pa.int32())),
    ]
)

CANDIDATE_PAIR = pa.struct(
    [
        ("subject_id", pa.int64()),
        ("object_id", pa.int64()),
        ("subject_category", pa.string()),
        ("object_category", pa.string()),
        # Relation texts some caption proposed for exactly this class pair.
        ("proposals", pa.list_(PROPOSAL)),
    ]
)

# How one caption writes the two sides of a proposal (stages.entity_number):
# number "singular" / "plural" / null (not stated), count stated or implied by
# a singular ("a man" -> 1), null otherwise ("men").
PROPOSAL_MENTION = pa.struct(
    [
        ("caption_index", pa.int32()),
        ("subject_number", pa.string()),
        ("subject_count", pa.int32()),
        ("object_number", pa.string()),
        ("object_count", pa.int32()),
    ]
)

# A proposal: a relation text some caption states between two classes, e.g.
# ("hold", person, baseball bat); its candidates are every box pair of those classes.
CLASS_PROPOSAL = pa.struct(
    [
        ("relation", pa.string()),
        ("subject_category", pa.string()),
        ("object_category", pa.string()),
        ("n_pairs", pa.int32()),  # candidate box pairs in the whole image
        ("mentions", pa.list_(PROPOSAL_MENTION)),
    ]
)

MATCH = pa.schema(
    [
        ("image_id", pa.int64()),
        ("chunk_index", pa.int32()),
        # T: every relation text parsed from the image's captions (sorted, unique);
        # the R-Tagger scores each pair against all of them.
        ("relation_texts", pa.list_(pa.string())),
        # For each text of T, every caption of the image that mentions it (provenance
        # for relations the R-Tagger puts on a pair no caption proposed them for).
        ("relation_captions", pa.list_(PROPOSAL)),
        # P: at most N_Q candidate subject-object pairs per chunk.
        ("pairs", pa.list_(CANDIDATE_PAIR)),
        # The image's proposals (same list in every chunk of the image). Added in
        # match v2; files written before read back with null here.
        ("class_proposals", pa.list_(CLASS_PROPOSAL)),
    ]
)

TAGGED_RELATION = pa.struct(
    [
        ("subject_id", pa.int64()),
        ("object_id", pa.int64()),
        ("predicate", pa.string()),
        ("confidence", pa.float64()),
        ("caption_indices", pa.list_(pa.int32())),
        # Index into the row's ``class_proposals`` of the proposal this relation
        # answers; null when no caption proposed this predicate for this class pair.
        ("proposal_index", pa.int32()),
    ]
)

# Per proposal of the image: how many candidate pairs it had, how many relations
# the tagger kept for it (after η and the caps) and how many the caps dropped.
TAG_PROPOSAL = pa.struct(
    [
        ("relation", pa.string()),
        ("subject_category", pa.string()),
        ("object_category", pa.string()),
        ("n_candidates", pa.int32()),
        ("n_tagged", pa.int32()),
        ("n_capped", pa.int32()),
    ]
)

TAG = pa.schema(
    [
        ("image_id", pa.int64()),
        ("tagger", pa.string()),
        ("eta", pa.float64()),
        ("n_pairs", pa.int32()),
        ("relationships", pa.list_(TAGGED_RELATION)),
        # Added in tag v2, with ``proposal_index``; older files read back with nulls.
        ("class_proposals", pa.list_(TAG_PROPOSAL)),
    ]
)

SHARD_OBJECT = pa.struct(
    [
        ("object_id", pa.int64()),
        ("category_id", pa.int32()),
        ("names", pa.string()),
        ("x", pa.float64()),
        ("y", pa.float64()),
        ("w", pa.float64()),
        ("h", pa.float64()),
    ]
)

SHARD_RELATION = pa.struct(
    [
        ("relationship_id", pa.int64()),
        ("subject_id", pa.int64()),
        ("object_id", pa.int64()),
        ("predicate", pa.string()),
        ("confidence", pa.float64()),
        ("caption_indices", pa.list_(pa.int32())),
    ]
)

SHARD = pa.schema(
    [
        ("image_id", pa.int64()),
        ("dataset", pa.string()),
        ("data_split", pa.string()),
        ("file_name", pa.string()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("objects", pa.list_(SHARD_OBJECT)),
        ("relationships", pa.list_(SHARD_RELATION)),
    ]
)

ERRORS = pa.schema(
    [
        ("image_id", pa.int64()),
        ("stage", pa.string()),
        ("reason", pa.string()),
        ("detail", pa.string()),
    ]
)

STAGE_SCHEMAS: dict[str, pa.Schema] = {
    "ingest": INGEST,
    "caption": CAPTION,
    "parse": PARSE,
    "match": MATCH,
    "tag": TAG,
    "shard": SHARD,
}


def schema_for(stage: str) -> pa.Schema:
    try:
        return STAGE_SCHEMAS[stage]
    except KeyError:
        raise KeyError(f"unknown stage {stage!r}; known: {sorted(STAGE_SCHEMAS)}") from None


# Earlier versions of stage schemas that readers still accept. Each differs from
# the current one only by nullable fields added since, so an old file is read
# with its own schema and re-typed to the current one with those fields null
# (see :func:`upgrade_table`). Never list a change that removes or retypes a field.
def _without(schema_or_struct: pa.Schema | pa.StructType, name: str) -> list[pa.Field]:
    return [field for field in schema_or_struct if field.name != name]


_TAGGED_RELATION_V1 = pa.struct(_without(TAGGED_RELATION, "proposal_index"))
LEGACY_SCHEMAS: dict[str, tuple[pa.Schema, ...]] = {
    "match": (pa.schema(_without(MATCH, "class_proposals")),),
    "tag": (pa.schema([pa.field("relationships", pa.list_(_TAGGED_RELATION_V1)) if f.name == "relationships" else f
                       for f in _without(TAG, "class_proposals")]),),
}


def is_legacy_schema(schema: pa.Schema, found: pa.Schema) -> bool:
    """Whether ``found`` is an older, still readable version of the stage schema ``schema``."""
    found = found.remove_metadata()
    for stage, current in STAGE_SCHEMAS.items():
        if current.equals(schema.remove_metadata()):
            return any(old.equals(found) for old in LEGACY_SCHEMAS.get(stage, ()))
    return False


def upgrade_table(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """An old-version table re-typed to ``schema``: fields it lacks become null."""
    return pa.Table.from_pylist(table.to_pylist(), schema=schema)
