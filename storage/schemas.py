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
    ]
)

TAGGED_RELATION = pa.struct(
    [
        ("subject_id", pa.int64()),
        ("object_id", pa.int64()),
        ("predicate", pa.string()),
        ("confidence", pa.float64()),
        ("caption_indices", pa.list_(pa.int32())),
    ]
)

TAG = pa.schema(
    [
        ("image_id", pa.int64()),
        ("tagger", pa.string()),
        ("eta", pa.float64()),
        ("n_pairs", pa.int32()),
        ("relationships", pa.list_(TAGGED_RELATION)),
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
