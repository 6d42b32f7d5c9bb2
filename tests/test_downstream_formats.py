"""Artifacts load, unmodified, in the tools their users already have (issue 9).

On a real run over shared COCO images (oracle captions): every stage folder is a
Parquet dataset that pandas, pyarrow and DuckDB read as exactly the committed rows;
the RLIPv2 export satisfies what the official RLIPv2 reader does with each field
(replayed here from reading ``datasets/mixed_dataset.py`` and the R-Tagger writer,
not copied); import reads it back into shards; the run's metadata states the real
split and no captioning model. Objects365 naming is checked on a hand-made shard.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.config import load_config
from pipeline.contracts import STAGE_ORDER
from pipeline.label import run_label
from pipeline.splits import split_from_annotations
from storage.export import O365_PATHS_FILE, export_rlipv2_json
from storage.parts import StageStore
from storage.rlipv2_import import ImportFormatError, import_rlipv2_json
from storage.schemas import schema_for

ETA = 0.2


@pytest.fixture(scope="module")
def coco_root(shared_data, tmp_path_factory) -> Path:
    """The shared COCO images laid out as a COCO val2017 download (links, no copies): the issue's case."""
    mini = shared_data / "coco-mini"
    root = tmp_path_factory.mktemp("coco")
    (root / "annotations").mkdir()
    (root / "val2017").symlink_to(mini / "train2017", target_is_directory=True)
    (root / "annotations/instances_val2017.json").symlink_to(mini / "annotations/instances_train2017.json")
    (root / "annotations/captions_val2017.json").symlink_to(mini / "annotations/captions_train2017.json")
    return root


@pytest.fixture(scope="module")
def coco_run(coco_root, tmp_path_factory) -> Path:
    cfg = load_config({
        "name": "coco-oracle", "output": str(tmp_path_factory.mktemp("runs")), "part_size": 32,
        "executor": "local", "fsync": False,
        "dataset": {"kind": "coco", "annotations": str(coco_root / "annotations/instances_val2017.json"),
                    "images": str(coco_root / "val2017")},
        "caption": {"backend": "oracle", "captions_file": str(coco_root / "annotations/captions_val2017.json"),
                    "n_captions": 5},
        "tag": {"tagger": "greedy", "eta": ETA},
    })
    run_label(cfg)
    return cfg.run_dir


def _committed_rows(run_dir: Path, stage: str) -> list[dict]:
    opened = StageStore.open_recorded(run_dir, stage)
    assert opened is not None
    store, n_parts = opened
    return [row for part in store.committed_parts(n_parts) for row in store.read_rows(part)]


def _ids(rows) -> list[int]:
    return sorted(int(r["image_id"]) for r in rows)


@pytest.mark.shared_data
def test_every_stage_folder_reads_as_its_committed_rows(coco_run):
    import duckdb
    import pandas as pd
    import pyarrow.dataset as ds

    for stage in STAGE_ORDER:
        folder = coco_run / stage
        expected = _committed_rows(coco_run, stage)
        assert expected, stage
        table = ds.dataset(folder, format="parquet").to_table()
        assert table.schema.remove_metadata().equals(schema_for(stage)), stage
        assert _ids(table.to_pylist()) == _ids(expected), stage
        frame = pd.read_parquet(folder)
        assert list(frame.columns) == schema_for(stage).names and _ids(frame.to_dict("records")) == _ids(expected)
        relation = duckdb.sql(f"SELECT * FROM read_parquet('{folder}/*.parquet')")
        assert relation.columns == schema_for(stage).names, stage
        assert sorted(r[0] for r in relation.fetchall()) == _ids(expected), stage


@pytest.mark.shared_data
def test_an_uncommitted_part_is_invisible_to_every_reader(coco_run, tmp_path):
    import duckdb
    import pandas as pd

    run = tmp_path / "copy"
    shutil.copytree(coco_run, run)
    store, n_parts = StageStore.open_recorded(run, "shard")
    store.uncommit(n_parts - 1)  # as write_part does first when it recomputes a part
    kept = _ids(_committed_rows(run, "shard"))
    assert 0 < len(kept) < 80
    assert _ids(pd.read_parquet(run / "shard").to_dict("records")) == kept
    assert sorted(r[0] for r in duckdb.sql(f"SELECT image_id FROM read_parquet('{run}/shard/*.parquet')").fetchall()) \
        == kept


@pytest.mark.shared_data
def test_manifest_states_the_split_and_no_captioning_model(coco_run):
    manifest = json.loads((coco_run / "manifest.json").read_text())
    assert manifest["models"]["captioner"] == "oracle" and manifest["models"]["caption_model_id"] is None
    assert "model_id" not in manifest["config"]["caption"] and "blip" not in json.dumps(manifest).lower()
    assert {r["data_split"] for r in _committed_rows(coco_run, "shard")} == {"val2017"}
    # Clipped boxes carry no float noise: every coordinate is as short as the annotation's own.
    for row in _committed_rows(coco_run, "shard"):
        for obj in row["objects"]:
            assert all(len(repr(obj[k]).split(".")[-1]) <= 6 for k in ("x", "y", "w", "h")), obj


def _replay_official_reader(entries: list, coco_root: Path) -> None:
    """What RLIPv2's MixedRelDetection and its frequency helpers do with each field, as assertions."""
    object_ids, relationship_ids = [], []
    name_counts: dict[str, int] = {}
    predicate_counts: dict[str, int] = {}
    person_subjects = 0
    for entry in entries:
        assert set(entry) == {"image_id", "dataset", "data_split", "objects", "relationships"}
        assert type(entry["image_id"]) is int
        assert entry["dataset"] == "coco2017"  # selects the COCO image folder
        # The image is opened at <coco_path>/<data_split>/<image_id zero-padded to 12>.jpg.
        assert (coco_root / entry["data_split"] / f"{str(entry['image_id']).zfill(12)}.jpg").is_file()
        local = {}
        for index, obj in enumerate(entry["objects"]):
            assert set(obj) == {"object_id", "x", "y", "w", "h", "names"}
            assert type(obj["object_id"]) is int and obj["object_id"] >= 10_000_000
            assert all(isinstance(obj[k], (int, float)) for k in ("x", "y", "w", "h"))
            assert obj["w"] > 0 and obj["h"] > 0  # xyxy = (x, y, x + w, y + h) is a real box
            assert isinstance(obj["names"], str)  # a dict key and compared to "person"
            name_counts[obj["names"]] = name_counts.get(obj["names"], 0) + 1
            local[obj["object_id"]] = index
            object_ids.append(obj["object_id"])
        for rel in entry["relationships"]:
            assert set(rel) == {"relationship_id", "predicate", "subject_id", "object_id", "confidence"}
            assert type(rel["relationship_id"]) is int and rel["relationship_id"] >= 10_000_000
            # add_local_object_id: both ends are objects of this very image.
            subject, obj = local[rel["subject_id"]], local[rel["object_id"]]
            assert isinstance(rel["predicate"], str) and rel["predicate"]
            predicate_counts[rel["predicate"]] = predicate_counts.get(rel["predicate"], 0) + 1
            assert isinstance(rel["confidence"], float) and ETA < rel["confidence"] <= 1.0
            person_subjects += entry["objects"][subject]["names"] == "person"
            assert obj != subject
            relationship_ids.append(rel["relationship_id"])
    assert len(set(object_ids)) == len(object_ids) and len(set(relationship_ids)) == len(relationship_ids)
    assert name_counts and predicate_counts and person_subjects > 0


@pytest.mark.shared_data
def test_export_is_what_the_official_reader_reads(coco_run, coco_root, tmp_path):
    dest = tmp_path / "rlipv2.json"
    assert export_rlipv2_json(coco_run, dest) == 80
    entries = json.loads(dest.read_text())
    assert {e["data_split"] for e in entries} == {"val2017"}
    _replay_official_reader(entries, coco_root)
    assert sum(len(e["relationships"]) for e in entries) > 50
    assert not (tmp_path / O365_PATHS_FILE).exists()  # only Objects365 needs the id -> path map


@pytest.mark.shared_data
def test_export_import_export_is_identical(coco_run, coco_root, tmp_path):
    first = tmp_path / "first.json"
    export_rlipv2_json(coco_run, first)
    runs = tmp_path / "runs"
    assert main(["import", str(first), "--run", "back", "--output", str(runs), "--part-size", "30",
                 "--images", str(coco_root)]) == 0
    second = tmp_path / "second.json"
    assert main(["export", "back", "--output", str(runs), "--dest", str(second)]) == 0
    assert second.read_bytes() == first.read_bytes()
    original = {r["image_id"]: r for r in _committed_rows(coco_run, "shard")}
    for row in _committed_rows(runs / "back", "shard"):
        kept = original[row["image_id"]]
        assert (row["file_name"], row["width"], row["height"], row["data_split"], row["dataset"]) == \
            (kept["file_name"], kept["width"], kept["height"], kept["data_split"], kept["dataset"])
        assert [o["category_id"] for o in row["objects"]] == [o["category_id"] for o in kept["objects"]]


@pytest.mark.shared_data
def test_training_on_a_run_made_elsewhere_names_images(coco_run, tmp_path, capsys):
    moved = tmp_path / "moved"
    shutil.copytree(coco_run, moved)
    manifest = json.loads((moved / "manifest.json").read_text())
    manifest["config"]["dataset"]["images"] = "/nowhere/coco/val2017"
    (moved / "manifest.json").write_text(json.dumps(manifest))
    assert main(["train", "--shards", str(moved), "--output", str(tmp_path / "train")]) == 1
    err = capsys.readouterr().err
    assert "--images" in err and "Traceback" not in err, err


# -- without shared data ---------------------------------------------------------------------------------------------

def _o365_row(image_id: int) -> dict:
    return {"image_id": image_id, "dataset": "objects365", "data_split": "val", "file_name": f"patch3/o{image_id}.jpg",
            "width": 100, "height": 80,
            "objects": [{"object_id": 5, "category_id": 1, "names": "Person", "x": 1.0, "y": 2.0, "w": 30.5, "h": 40.0},
                        {"object_id": 9, "category_id": 2, "names": "Hat", "x": 3.0, "y": 2.0, "w": 5.0, "h": 4.0}],
            "relationships": [{"relationship_id": 1, "subject_id": 5, "object_id": 9, "predicate": "wear",
                               "confidence": 0.75, "caption_indices": [0]}]}


def test_objects365_export_names_o365_and_writes_the_path_map(tmp_path):
    store = StageStore(tmp_path / "o365", "shard", "k", fsync=False)
    store.prepare({}, 1)
    store.write_part(0, [_o365_row(7), _o365_row(8)], [])
    store.mark_success(1)
    dest = tmp_path / "export" / "o365.json"
    export_rlipv2_json(tmp_path / "o365", dest)
    entries = json.loads(dest.read_text())
    assert [(e["dataset"], e["data_split"]) for e in entries] == [("o365", "val")] * 2
    assert [o["object_id"] for e in entries for o in e["objects"]] == [20_000_000 + i for i in range(4)]
    assert [r["relationship_id"] for e in entries for r in e["relationships"]] == [20_000_000, 20_000_001]
    assert json.loads((dest.parent / O365_PATHS_FILE).read_text()) == {"7": "patch3/o7.jpg", "8": "patch3/o8.jpg"}
    # Back again: the map beside the JSON gives the image paths.
    import_rlipv2_json(dest, tmp_path / "runs" / "back", fsync=False)
    again = tmp_path / "again.json"
    export_rlipv2_json(tmp_path / "runs" / "back", again)
    assert again.read_bytes() == dest.read_bytes()


def test_visual_genome_entries_round_trip_without_dataset_or_split(tmp_path):
    """The reader takes an entry with no "dataset" for Visual Genome; "vg" there would leave it without an image."""
    vg = tmp_path / "vg.json"
    vg.write_text(json.dumps([{"image_id": 2407890, "objects": [
        {"object_id": 30000000, "x": 324, "y": 320, "w": 142, "h": 255, "names": "cat"},
        {"object_id": 30000001, "x": 359, "y": 362, "w": 72, "h": 81, "names": "table"}],
        "relationships": [{"relationship_id": 30000000, "predicate": "on", "subject_id": 30000000,
                           "object_id": 30000001}]}]))
    import_rlipv2_json(vg, tmp_path / "runs" / "vg", fsync=False)
    out = tmp_path / "out.json"
    export_rlipv2_json(tmp_path / "runs" / "vg", out)
    (entry,) = json.loads(out.read_text())
    assert set(entry) == {"image_id", "objects", "relationships"}
    assert entry["relationships"][0] == {"relationship_id": 30000000, "predicate": "on", "subject_id": 30000000,
                                         "object_id": 30000001}  # no confidence: kept whatever the threshold
    assert _committed_rows(tmp_path / "runs" / "vg", "shard")[0]["file_name"] == "2407890.jpg"


def test_import_refuses_what_the_official_reader_cannot_use(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"image_id": 1, "dataset": "coco2017", "data_split": "val2017",
                                "objects": [{"object_id": 1, "x": 0, "y": 0, "w": 1, "h": 1, "names": ["tv"]}],
                                "relationships": []}]))
    with pytest.raises(ImportFormatError, match="'names' must be str"):
        import_rlipv2_json(bad, tmp_path / "run", fsync=False)
    dangling = tmp_path / "dangling.json"
    dangling.write_text(json.dumps([{"image_id": 1, "dataset": "coco2017", "objects": [],
                                     "relationships": [{"subject_id": 3, "object_id": 4, "predicate": "on"}]}]))
    with pytest.raises(ImportFormatError, match="not an object of the image"):
        import_rlipv2_json(dangling, tmp_path / "run2", fsync=False)
    not_a_list = tmp_path / "dict.json"
    not_a_list.write_text(json.dumps({"images": []}))
    with pytest.raises(ImportFormatError, match="expected a JSON list"):
        import_rlipv2_json(not_a_list, tmp_path / "run3", fsync=False)


@pytest.mark.parametrize("name, split", [
    ("instances_val2017.json", "val2017"), ("instances_train2017.json", "train2017"),
    ("person_keypoints_val2014.json", "val2014"), ("zhiyuan_objv2_train.json", "train"),
    ("zhiyuan_objv2_val.json", "val"), ("objects365_val.json", "val"), ("annotations.json", "train"),
])
def test_data_split_comes_from_the_annotation_file_name(name, split):
    assert split_from_annotations(Path("/data/annotations") / name) == split


def test_a_clipped_box_carries_no_float_noise():
    from collections import Counter

    from pipeline.datasets import BoxStore, _add_annotation

    boxes, stats = BoxStore(), Counter()
    images = {1: {"file_name": "a.jpg", "width": 200, "height": 100}}
    # 175.3 + 40 spills past 200; 200 - 175.3 is 24.69999999999999 in floating point.
    _add_annotation({"id": 1, "image_id": 1, "category_id": 3, "bbox": [175.3, 10.0, 40.0, 20.0]},
                    images, {3: "car"}, boxes, [], stats)
    # Not clipped: kept exactly as annotated (x + w - x is not w in floating point either).
    _add_annotation({"id": 2, "image_id": 1, "category_id": 3, "bbox": [167.53, 1.0, 24.7, 20.0]},
                    images, {3: "car"}, boxes, [], stats)
    assert stats["box_clipped"] == 1
    assert list(boxes.xywh) == [175.3, 10.0, 24.7, 20.0, 167.53, 1.0, 24.7, 20.0]
