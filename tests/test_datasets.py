from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from pipeline.config import DatasetConfig
from pipeline.datasets import DatasetError, read_dataset


def write_dataset(tmp_path: Path, images: list, annotations: list, categories=None) -> DatasetConfig:
    root = tmp_path / "images"
    root.mkdir(exist_ok=True)
    for entry in images:
        if isinstance(entry, dict) and isinstance(entry.get("file_name"), str) and not entry["file_name"].startswith(("/", "..")):
            path = root / entry["file_name"]
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (8, 8)).save(path)
    ann = tmp_path / "instances.json"
    ann.write_text(json.dumps({"images": images, "annotations": annotations,
                               "categories": categories or [{"id": 1, "name": "person"}, {"id": 2, "name": "dog"}]}))
    return DatasetConfig(kind="coco-format", annotations=ann, images=root)


def img(i, **kw):
    return {"id": i, "file_name": f"{i}.jpg", "width": 100, "height": 80, **kw}


def box(i, image_id, bbox, cat=1, **kw):
    return {"id": i, "image_id": image_id, "category_id": cat, "bbox": bbox, **kw}


def test_demo_dataset_reads():
    result = read_dataset(DatasetConfig(kind="demo"))
    assert [r["image_id"] for r in result.rows] == [1, 2, 3, 4, 5, 6]
    assert not result.errors
    assert sum(len(r["objects"]) for r in result.rows) == 21


def test_boxes_crowd_degenerate_clipped_and_unknown(tmp_path):
    cfg = write_dataset(tmp_path, [img(1)], [
        box(10, 1, [10, 10, 20, 20]),
        box(11, 1, [10, 10, 0, 20]),  # zero width
        box(12, 1, [10, 10, -5, 20]),  # negative
        box(13, 1, [90, 70, 50, 50]),  # spills out: clipped to 10x10
        box(14, 1, [500, 500, 10, 10]),  # entirely outside
        box(15, 1, [1, 1, 5, 5], iscrowd=1),
        box(16, 1, [1, 1, 5, 5], cat=99),  # unknown category
        {"id": 17, "image_id": 1, "category_id": 1},  # no bbox
    ])
    result = read_dataset(cfg)
    objects = result.rows[0]["objects"]
    assert [o["object_id"] for o in objects] == [10, 13]
    assert (objects[1]["w"], objects[1]["h"]) == (10.0, 10.0)
    assert result.box_stats["degenerate_box_dropped"] == 3
    assert result.box_stats["crowd_box_dropped"] == 1
    assert result.box_stats["box_clipped"] == 1
    assert sorted(e.reason for e in result.errors) == ["malformed_annotation", "unknown_category"]


def test_bad_image_entries_become_error_rows(tmp_path):
    cfg = write_dataset(tmp_path, [img(1), img(1), {"id": 2, "file_name": "2.jpg", "width": 0, "height": 5},
                                   {"file_name": "nokey.jpg"}, img(3, file_name="../../etc/passwd"),
                                   img(4, file_name="/etc/passwd"), img(5)], [])
    (Path(cfg.images) / "5.jpg").unlink()  # listed but missing
    result = read_dataset(cfg)
    assert [r["image_id"] for r in result.rows] == [1]
    reasons = sorted((e.image_id or -1, e.reason) for e in result.errors)
    assert reasons == [(-1, "malformed_image_entry"), (1, "duplicate_image_id"), (2, "malformed_image_entry"),
                       (3, "unsafe_path"), (4, "unsafe_path"), (5, "missing_image")]


def test_symlink_escaping_root_is_refused(tmp_path):
    outside = tmp_path / "secret.jpg"
    Image.new("RGB", (4, 4)).save(outside)
    cfg = write_dataset(tmp_path, [img(1)], [])
    (Path(cfg.images) / "link.jpg").symlink_to(outside)
    data = json.loads(Path(cfg.annotations).read_text())
    data["images"].append(img(2, file_name="link.jpg"))
    Path(cfg.annotations).write_text(json.dumps(data))
    result = read_dataset(cfg)
    assert [e.reason for e in result.errors] == ["unsafe_path"]


@pytest.mark.parametrize("content, message", [
    (None, "not found"),
    ("{not json", "not valid JSON"),
    ("[1, 2]", "JSON object"),
    ('{"images": [], "annotations": []}', "categories"),
])
def test_unusable_annotation_files_raise_clear_errors(tmp_path, content, message):
    ann = tmp_path / "a.json"
    if content is not None:
        ann.write_text(content)
    with pytest.raises(DatasetError, match=message):
        read_dataset(DatasetConfig(kind="coco", annotations=ann, images=tmp_path))


def test_objects365_patch_layout(tmp_path):
    root = tmp_path / "images"
    (root / "patch8").mkdir(parents=True)
    Image.new("RGB", (10, 10)).save(root / "patch8" / "objects365_v1_00420917.jpg")
    ann = tmp_path / "zhiyuan_objv2_train.json"
    ann.write_text(json.dumps({
        "images": [{"id": 420917, "file_name": "images/v1/patch8/objects365_v1_00420917.jpg", "width": 10, "height": 10}],
        "annotations": [{"id": 1, "image_id": 420917, "category_id": 1, "bbox": [1, 1, 4, 4], "iscrowd": 0}],
        "categories": [{"id": 1, "name": "Person"}]}))
    result = read_dataset(DatasetConfig(kind="objects365", annotations=ann, images=root))
    assert result.rows[0]["file_name"] == "patch8/objects365_v1_00420917.jpg"
    assert result.rows[0]["dataset"] == "objects365"


@pytest.mark.shared_data
def test_coco_mini_reads(shared_data):
    cfg = DatasetConfig(kind="coco", annotations=shared_data / "coco-mini/annotations/instances_train2017.json",
                        images=shared_data / "coco-mini/train2017")
    result = read_dataset(cfg)
    assert len(result.rows) == 80 and not result.errors
    assert sum(len(r["objects"]) for r in result.rows) + result.box_stats["crowd_box_dropped"] == 739


@pytest.fixture
def always_stream(monkeypatch):
    """Makes every annotation file take the streaming (ijson) path of large files."""
    import pipeline.annotation_source

    monkeypatch.setattr(pipeline.annotation_source, "STREAM_BYTES", 0)


def test_streamed_reading_matches_in_memory_reading(tmp_path, monkeypatch):
    import pipeline.annotation_source

    cfg = write_dataset(tmp_path, [img(2), img(1), img(1), {"id": 3, "file_name": "3.jpg", "width": 0, "height": 5}], [
        box(10, 1, [10, 10, 20, 20]), box(11, 2, [90, 70, 50, 50]), box(12, 1, [1, 1, 5, 5], cat=99),
        box(13, 2, [5, 5, 0, 5]), box(14, 1, [1.5, 2.25, 3.0, 4.0], cat=2), {"id": 15, "image_id": 1},
    ])
    in_memory = read_dataset(cfg)
    monkeypatch.setattr(pipeline.annotation_source, "STREAM_BYTES", 0)
    streamed = read_dataset(cfg)
    assert streamed.rows == in_memory.rows
    assert [e.as_row() for e in streamed.errors] == [e.as_row() for e in in_memory.errors]
    counts = dict(streamed.box_stats)
    counts.pop("pycocotools_indexed_images", None)  # the cross-check runs only on in-memory files
    assert counts == {k: v for k, v in in_memory.box_stats.items() if k != "pycocotools_indexed_images"}


@pytest.mark.parametrize("content, message", [
    ("{not json", "not valid JSON"),
    ('{"images": [], "annotations": [{"id": 1,', "not valid JSON"),
    ("[1, 2]", "JSON object"),
    ('{"images": [], "annotations": []}', "categories"),
    ('{"images": {}, "annotations": [], "categories": []}', "images"),
])
def test_streamed_unusable_files_raise_the_same_clear_errors(tmp_path, always_stream, content, message):
    ann = tmp_path / "a.json"
    ann.write_text(content)
    with pytest.raises(DatasetError, match=message):
        read_dataset(DatasetConfig(kind="coco", annotations=ann, images=tmp_path))
