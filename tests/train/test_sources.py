"""Readers: relational shards (streamed, committed parts only), RLIPv2/VG JSON, records."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from stages.train.records import Relation, record_from_objects, select_relations
from stages.train.sources import JsonSource, ShardSource, SourceError, committed_shard_parts, run_image_root
from storage.schemas import SHARD
from tests.train.shards import shard_rows, write_demo_run


def test_select_relations_keeps_the_most_confident_not_the_first() -> None:
    rels = [(i, Relation(0, 1, f"r{i}", confidence=(i % 7) / 7 + 0.01)) for i in range(150)]
    kept = select_relations(rels, eta=None, max_relations=100)
    assert len(kept) == 100
    assert min(r.confidence for r in kept) >= max(r.confidence for _, r in rels if r not in kept)
    assert [r.confidence for r in kept] == sorted((r.confidence for r in kept), reverse=True)


def test_select_relations_applies_eta_strictly() -> None:
    rels = [(0, Relation(0, 1, "a", 0.2)), (1, Relation(0, 1, "b", 0.21)), (2, Relation(1, 0, "c", 0.9))]
    assert [r.predicate for r in select_relations(rels, eta=0.2)] == ["c", "b"]


def test_record_drops_degenerate_boxes_and_their_relations() -> None:
    objects = [{"object_id": 1, "x": 0, "y": 0, "w": 10, "h": 10, "names": "man"},
               {"object_id": 2, "x": 5, "y": 5, "w": 0, "h": 10, "names": "hat"},
               {"object_id": 3, "x": 2, "y": 2, "w": 4, "h": 4, "names": ["cup", "mug"]}]
    rels = [{"relationship_id": 7, "subject_id": 1, "object_id": 2, "predicate": "wears", "confidence": 0.9},
            {"relationship_id": 8, "subject_id": 1, "object_id": 3, "predicate": "holds"},
            {"relationship_id": 9, "subject_id": 1, "object_id": 99, "predicate": "sees"}]
    record = record_from_objects(5, "vg", "5.jpg", Path("."), objects, rels, eta=None, max_relations=100,
                                 name_key="names")
    assert record.names == ["man", "cup"]
    assert record.boxes[1] == (2.0, 2.0, 6.0, 6.0)
    assert record.relations == [Relation(0, 1, "holds", 1.0)]


def test_shard_source_reads_committed_parts_with_image_root_from_manifest(tmp_path: Path) -> None:
    run = write_demo_run(tmp_path)
    source = ShardSource(run)
    # Image 6 has no relation: not a training image; the other five are.
    assert len(source) == 5
    assert source.part_sizes == [2, 2, 1]
    assert (source.image_root / "astronaut.png").is_file()
    record = source.get(0, 0)
    assert record.image_id == 1 and record.names[:2] == ["person", "helmet"]
    assert [r.predicate for r in record.relations] == ["next to", "in front of", "in front of"]
    assert source.relation_counts["on"] == 4 and source.entity_counts["tower"] == 4


def test_shard_source_reapplies_a_stricter_eta(tmp_path: Path) -> None:
    source = ShardSource(write_demo_run(tmp_path), eta=0.55)
    kept = [source.get(p, i) for p, n in enumerate(source.part_sizes) for i in range(n)]
    assert [r.image_id for r in kept] == [1, 2, 3]
    assert all(rel.confidence > 0.55 for r in kept for rel in r.relations)


def test_uncommitted_or_foreign_parts_are_ignored(tmp_path: Path) -> None:
    run = write_demo_run(tmp_path)
    # A part without its commit marker (a crash before the marker) is not read.
    pq.write_table(pa.Table.from_pylist(shard_rows()[:1], schema=SHARD), run / "shard" / "part-00009.parquet")
    # A marker whose size no longer matches its file is not trusted.
    marker = json.loads((run / "shard" / "_markers" / "part-00002.json").read_text())
    marker["rows_file"]["bytes"] += 1
    (run / "shard" / "_markers" / "part-00002.json").write_text(json.dumps(marker))
    assert [p.name for p in committed_shard_parts(run)] == ["part-00000.parquet", "part-00001.parquet"]
    assert len(ShardSource(run)) == 4


def test_image_root_must_exist_or_be_given(tmp_path: Path) -> None:
    run = write_demo_run(tmp_path)
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["config"]["dataset"] = {"kind": "coco", "annotations": "a.json", "images": ".../x/images"}
    (run / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(SourceError, match="--images DIR"):
        run_image_root(run)
    assert run_image_root(run, tmp_path) == tmp_path


def test_no_shards_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no committed shard parts"):
        ShardSource(tmp_path / "missing")


def test_json_source_reads_vg_and_pseudo_label_entries(tmp_path: Path) -> None:
    entries = [
        {"image_id": 11, "objects": [{"object_id": 1, "x": 0, "y": 0, "w": 5, "h": 5, "names": ["man"]},
                                     {"object_id": 2, "x": 1, "y": 1, "w": 2, "h": 2, "names": ["hat"]}],
         "relationships": [{"relationship_id": 0, "predicate": "wearing", "subject_id": 1, "object_id": 2}]},
        {"image_id": 12, "dataset": "coco", "data_split": "train",
         "objects": [{"object_id": 10_000_000, "x": 0, "y": 0, "w": 5, "h": 5, "names": ["dog"]},
                     {"object_id": 10_000_001, "x": 1, "y": 1, "w": 2, "h": 2, "names": ["frisbee"]}],
         "relationships": [{"relationship_id": 1, "predicate": "catching", "subject_id": 10_000_000,
                            "object_id": 10_000_001, "confidence": 0.35}]},
        {"image_id": 13, "objects": [], "relationships": []},
    ]
    path = tmp_path / "pseudo.json"
    path.write_text(json.dumps(entries))
    source = JsonSource(path, tmp_path)
    assert len(source) == 2
    vg, coco = source.get(0, 0), source.get(0, 1)
    assert vg.file_name == "11.jpg" and vg.relations == [Relation(0, 1, "wearing", 1.0)]
    assert coco.file_name == "000000000012.jpg" and coco.relations[0].confidence == 0.35
    assert len(JsonSource(path, tmp_path, eta=0.5)) == 1


def test_hico_det_fine_tuning_source_with_few_shot_subset(shared_data: Path, tmp_path: Path) -> None:
    from stages.train.benchmarks import DownstreamSource, label_space

    hico = shared_data / "hico-det"
    space = label_space("hico-det", meta=hico / "hico_meta.json")
    assert len(space.entity_texts) == 80 and len(space.relation_texts) == 117
    full = DownstreamSource("hico-det", hico / "test_hico.subset.json", tmp_path, space)
    few = DownstreamSource("hico-det", hico / "test_hico.subset.json", tmp_path, space, few_shot=10, seed=0)
    again = DownstreamSource("hico-det", hico / "test_hico.subset.json", tmp_path, space, few_shot=10, seed=0)
    assert len(few) < len(full) == 100
    assert [r.file_name for r in few.records] == [r.file_name for r in again.records]
    record = full.get(0, 0)
    assert record.names[record.relations[0].subject] == "person"
    assert all(rel.predicate in space.relation_texts for rel in record.relations)
    # Every label text of the benchmark can be drawn by Label Sequence Extension.
    assert set(full.relation_counts) == set(space.relation_texts)
