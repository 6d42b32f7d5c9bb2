"""Bad annotation files and entries: a clear message, or an error row with its reason, for every image.

Whole-file problems (missing, not JSON, wrong layout) stop the run before any
stage output exists, with one line naming the file and the problem. Problems of
single entries (boxes, categories, ids, files) become error rows or counted box
drops while the rest of the dataset is labelled; every image id of the file ends
up in the shards or in an error table, never in both and never in neither.
"""

from __future__ import annotations

import json
import re

import pytest

from pipeline.cli import main
from pipeline.config import load_config
from pipeline.datasets import DEMO_DIR
from pipeline.label import run_label
from tests.reliability.bad_dataset import write_bad_dataset
from tests.reliability.helpers import error_rows, shard_rows, write_config

# The bad dataset's forged 10001x10001 PNG trips Pillow's warning before our own limit refuses it.
pytestmark = pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")

# Reasons that take an image out of the run (the others are about one box or one duplicate entry).
IMAGE_LEVEL_REASONS = {"missing_image", "unsafe_path", "malformed_image_entry", "corrupt_image", "image_too_small",
                       "image_too_large", "no_captions"}

BROKEN_FILES = [
    pytest.param(None, "annotation file not found", id="missing-file"),
    pytest.param("{\"images\": [", "is not valid JSON", id="truncated-json"),
    pytest.param(b"\xff\xfe\x00 not text", "is not valid JSON|cannot read annotation file", id="binary"),
    pytest.param("[]", "expected a JSON object", id="top-level-list"),
    pytest.param('{"annotations": [], "categories": []}', "missing or non-list key 'images'", id="no-images-key"),
    pytest.param('{"images": [], "categories": [{"id": 1, "name": "a"}]}', "missing or non-list key 'annotations'",
                 id="no-annotations-key"),
    pytest.param('{"images": {}, "annotations": [], "categories": []}', "missing or non-list key 'images'",
                 id="images-not-a-list"),
    pytest.param('{"images": [], "annotations": [], "categories": [{"name": "a"}]}', "no usable categories",
                 id="categories-without-ids"),
]


@pytest.mark.parametrize("content, message", BROKEN_FILES)
def test_unusable_annotation_file_stops_with_one_clear_line(tmp_path, capsys, content, message):
    ann = tmp_path / "instances.json"
    if content is not None:
        ann.write_bytes(content.encode() if isinstance(content, str) else content)
    (tmp_path / "images").mkdir()
    config = write_config(tmp_path / "run.json", {
        "name": "bad", "output": str(tmp_path / "out"), "executor": "local",
        "dataset": {"kind": "coco", "annotations": str(ann), "images": str(tmp_path / "images")},
        "caption": {"backend": "oracle", "captions_file": str(DEMO_DIR / "captions.json")},
        "tag": {"tagger": "greedy"}})
    code = main(["label", "--config", str(config), "--orchestrator", "none"])
    err = capsys.readouterr().err
    assert code == 1
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert "instances.json" in err
    assert re.search(message, err), err
    assert not (tmp_path / "out" / "bad" / "ingest").exists(), "no stage output before the dataset is validated"
    assert not (tmp_path / "out" / "bad" / ".lock").exists()


def test_missing_image_folder_is_one_clear_error(tmp_path, capsys):
    ann = tmp_path / "instances.json"
    ann.write_text(json.dumps({"images": [{"id": 1, "file_name": "a.jpg", "width": 4, "height": 4}],
                               "annotations": [], "categories": [{"id": 1, "name": "person"}]}))
    config = write_config(tmp_path / "run.json", {
        "name": "bad", "output": str(tmp_path / "out"), "executor": "local",
        "dataset": {"kind": "coco", "annotations": str(ann), "images": str(tmp_path / "no-such-folder")},
        "caption": {"backend": "oracle", "captions_file": str(DEMO_DIR / "captions.json")},
        "tag": {"tagger": "greedy"}})
    assert main(["label", "--config", str(config), "--orchestrator", "none"]) == 1
    err = capsys.readouterr().err
    assert "image folder not found" in err and "no-such-folder" in err and "Traceback" not in err


@pytest.fixture(scope="module")
def labelled_bad_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad-dataset")
    dataset = write_bad_dataset(root, root / "out")
    cfg = load_config(dataset.config)
    plan, manifest = run_label(cfg)
    return dataset, cfg.run_dir, manifest


def test_every_image_is_in_the_shards_or_the_errors_with_its_reason(labelled_bad_dataset):
    dataset, run_dir, _ = labelled_bad_dataset
    shard_ids = [r["image_id"] for r in shard_rows(run_dir)]
    assert len(shard_ids) == len(set(shard_ids)), "an image appears twice in the shards"
    errors = error_rows(run_dir)
    image_errors = {}
    for err in errors:
        if err["image_id"] is not None and not (err["image_id"] in dataset.duplicate_ids
                                                 and err["reason"] == "duplicate_image_id"):
            image_errors.setdefault(err["image_id"], set()).add((err["stage"], err["reason"]))
    for image_id, outcome in dataset.expected.items():
        if outcome == "shard":
            assert image_id in shard_ids, f"image {image_id} was silently dropped ({image_errors.get(image_id)})"
            dropping = {r for _, r in image_errors.get(image_id, ())} & IMAGE_LEVEL_REASONS
            assert not dropping, f"image {image_id} is both labelled and refused: {dropping}"
        else:
            assert image_id not in shard_ids, f"image {image_id} should have been refused ({outcome})"
            assert outcome in image_errors.get(image_id, set()), f"image {image_id}: {image_errors.get(image_id)}"
    assert set(shard_ids) | set(image_errors) >= set(dataset.expected)


def test_entry_problems_are_error_rows_with_specific_reasons(labelled_bad_dataset):
    dataset, run_dir, _ = labelled_bad_dataset
    reasons = {(e["image_id"], e["reason"]) for e in error_rows(run_dir) if e["stage"] == "ingest"}
    assert (1, "duplicate_image_id") in reasons
    assert (None, "malformed_image_entry") in reasons  # the entry without an id
    assert (50, "unknown_category") in reasons
    assert (50, "malformed_annotation") in reasons
    assert (None, "malformed_annotation") in reasons  # the annotation that is a string
    details = {e["reason"]: e["detail"] for e in error_rows(run_dir)}
    assert "999" in details["unknown_category"]
    assert "appears more than once" in details["duplicate_image_id"]


def test_bad_boxes_are_dropped_or_clipped_and_counted(labelled_bad_dataset):
    dataset, run_dir, manifest = labelled_bad_dataset
    image = next(r for r in shard_rows(run_dir) if r["image_id"] == 50)
    ids = sorted(o["object_id"] for o in image["objects"])
    assert ids == [50_000, 50_001, 50_103], "only the valid boxes (and the clipped one) are kept"
    clipped = next(o for o in image["objects"] if o["object_id"] == 50_103)
    assert clipped["x"] + clipped["w"] <= 64 and clipped["y"] + clipped["h"] <= 48
    boxes = manifest["ingest"]["boxes"]
    assert boxes["degenerate_box_dropped"] == 3 and boxes["box_clipped"] == 1 and boxes["orphan_annotation"] >= 1


def test_the_run_reports_error_counts_by_reason(labelled_bad_dataset):
    dataset, run_dir, manifest = labelled_bad_dataset
    caption = manifest["stages"]["caption"]["error_reasons"]
    assert caption == {"corrupt_image": 4, "image_too_large": 2, "image_too_small": 1, "no_captions": 1}
    ingest = manifest["stages"]["ingest"]["error_reasons"]
    assert ingest["missing_image"] == 2 and ingest["unsafe_path"] == 2
    assert manifest["stages"]["shard"]["rows"] == sum(1 for o in dataset.expected.values() if o == "shard")
