"""Stage files written before match/tag v2 (no class_proposals, no proposal_index) still read back."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from storage.parts import SchemaMismatch, read_table
from storage.schemas import LEGACY_SCHEMAS, MATCH, TAG


def test_v1_tag_and_match_files_read_with_the_new_fields_null(tmp_path: Path) -> None:
    old_tag = [{"image_id": 1, "tagger": "greedy", "eta": 0.2, "n_pairs": 1,
                "relationships": [{"subject_id": 1, "object_id": 2, "predicate": "ride", "confidence": 1.0,
                                   "caption_indices": [0]}]}]
    pq.write_table(pa.Table.from_pylist(old_tag, schema=LEGACY_SCHEMAS["tag"][0]), tmp_path / "tag.parquet")
    (row,) = read_table(tmp_path / "tag.parquet", TAG).to_pylist()
    assert row["class_proposals"] is None
    assert row["relationships"] == [{**old_tag[0]["relationships"][0], "proposal_index": None}]

    old_match = [{"image_id": 1, "chunk_index": 0, "relation_texts": ["ride"], "relation_captions": [],
                  "pairs": [{"subject_id": 1, "object_id": 2, "subject_category": "person", "object_category": "horse",
                             "proposals": [{"relation": "ride", "caption_indices": [0]}]}]}]
    pq.write_table(pa.Table.from_pylist(old_match, schema=LEGACY_SCHEMAS["match"][0]), tmp_path / "match.parquet")
    (row,) = read_table(tmp_path / "match.parquet", MATCH).to_pylist()
    assert row["class_proposals"] is None and row["pairs"] == old_match[0]["pairs"]


def test_a_legacy_schema_of_another_stage_is_still_refused(tmp_path: Path) -> None:
    pq.write_table(pa.Table.from_pylist([], schema=LEGACY_SCHEMAS["match"][0]), tmp_path / "x.parquet")
    with pytest.raises(SchemaMismatch):
        read_table(tmp_path / "x.parquet", TAG)
