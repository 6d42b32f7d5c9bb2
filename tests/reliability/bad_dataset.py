"""A small COCO-format dataset in which almost everything is wrong, with what must happen to each image.

``write_bad_dataset(root)`` writes images, an instances file and a captions file,
and returns a :class:`BadDataset`: the run config to label it and, for every image
id in the annotation file, the outcome the factory owes it: ``"shard"`` (labelled)
or the ``(stage, reason)`` of its error row.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.reliability.bad_images import write_image_zoo

CATEGORIES = [{"id": 1, "name": "person"}, {"id": 18, "name": "dog"}, {"id": 3, "name": "car"}]


@dataclass
class BadDataset:
    config: dict[str, Any]
    expected: dict[int, str | tuple[str, str]]
    # Image ids whose entry is kept although another entry with the same id was refused.
    duplicate_ids: set[int] = field(default_factory=set)


def _entry(image_id: int, file_name: str, width: int = 64, height: int = 48) -> dict[str, Any]:
    return {"id": image_id, "file_name": file_name, "width": width, "height": height}


def _boxes(image_id: int, first_id: int) -> list[dict[str, Any]]:
    """A person and a dog side by side: enough for the matcher and tagger to find a pair."""
    return [
        {"id": first_id, "image_id": image_id, "category_id": 1, "bbox": [2, 2, 28, 40], "iscrowd": 0, "area": 1120},
        {"id": first_id + 1, "image_id": image_id, "category_id": 18, "bbox": [32, 10, 28, 30], "iscrowd": 0,
         "area": 840},
    ]


def write_bad_dataset(root: Path, output: Path) -> BadDataset:
    images_dir = root / "images"
    write_image_zoo(images_dir)
    entries: list[Any] = []
    annotations: list[Any] = []
    expected: dict[int, str | tuple[str, str]] = {}

    def add(image_id: int, file_name: str, outcome: str | tuple[str, str], **size: int) -> None:
        entries.append(_entry(image_id, file_name, **size))
        annotations.extend(_boxes(image_id, 1000 * image_id))
        expected[image_id] = outcome

    # Images the caption stage opens and must accept.
    for image_id, name in enumerate(["ok.jpg", "grayscale.jpg", "grayscale16.png", "cmyk.jpg", "rgba.png",
                                     "palette_alpha.png", "exif_rotate_90.jpg", "two_pixels.png"], start=1):
        add(image_id, name, "shard")
    # Images listed but unusable when opened.
    for image_id, (name, reason) in enumerate([
        ("truncated.jpg", "corrupt_image"), ("garbage.jpg", "corrupt_image"), ("text.jpg", "corrupt_image"),
        ("empty.jpg", "corrupt_image"), ("one_pixel.png", "image_too_small"), ("bomb.png", "image_too_large"),
        ("huge_bomb.png", "image_too_large"),
    ], start=20):
        add(image_id, name, ("caption", reason))
    # Entries refused at ingest.
    add(40, "never_written.jpg", ("ingest", "missing_image"))
    add(41, "../../etc/passwd", ("ingest", "unsafe_path"))
    add(42, "/etc/hostname", ("ingest", "unsafe_path"))
    add(43, "folder.jpg", ("ingest", "missing_image"))
    add(44, "ok.jpg", ("ingest", "malformed_image_entry"), width=0)
    entries.append({"id": 45, "width": 64, "height": 48})  # no file_name
    expected[45] = ("ingest", "malformed_image_entry")
    entries.append(_entry(1, "grayscale.jpg"))  # duplicate of image 1: the first entry wins
    entries.append({"file_name": "ok.jpg", "width": 64, "height": 48})  # no id at all: an error row without one
    # Boxes that are wrong in every way, on an image that is fine.
    add(50, "ok.jpg", "shard")
    annotations += [
        {"id": 50_100, "image_id": 50, "category_id": 1, "bbox": [5, 5, -4, 10], "iscrowd": 0},  # negative width
        {"id": 50_101, "image_id": 50, "category_id": 1, "bbox": [5, 5, 0, 0], "iscrowd": 0},  # zero size
        {"id": 50_102, "image_id": 50, "category_id": 1, "bbox": [500, 500, 9, 9], "iscrowd": 0},  # outside
        {"id": 50_103, "image_id": 50, "category_id": 1, "bbox": [60, 40, 30, 30], "iscrowd": 0},  # spills over
        {"id": 50_104, "image_id": 50, "category_id": 999, "bbox": [5, 5, 9, 9], "iscrowd": 0},  # unknown category
        {"id": 50_105, "image_id": 50, "category_id": 1, "bbox": [5, 5, "9", None]},  # not numbers
        {"id": 50_106, "image_id": 50, "category_id": 1},  # no bbox
        {"id": 50_107, "image_id": 9999, "category_id": 1, "bbox": [1, 1, 5, 5]},  # image that does not exist
        "not an annotation",
    ]
    # Image 51 is fine but nobody wrote captions for it.
    add(51, "ok.jpg", ("caption", "no_captions"))

    ann_file = root / "instances.json"
    ann_file.write_text(json.dumps({"images": entries, "annotations": annotations, "categories": CATEGORIES}))
    captions = [{"id": 100 * i + k, "image_id": i, "caption": text}
                for i in expected if i != 51
                for k, text in enumerate(["a man standing next to a dog", "a person playing with a dog on the grass",
                                          "a dog sitting near a man"])]
    cap_file = root / "captions.json"
    cap_file.write_text(json.dumps({"annotations": captions}))
    config = {
        "name": "bad", "output": str(output), "part_size": 4, "executor": "local", "fsync": False,
        "dataset": {"kind": "coco-format", "annotations": str(ann_file), "images": str(images_dir)},
        "caption": {"backend": "oracle", "captions_file": str(cap_file), "n_captions": 3},
        "tag": {"tagger": "greedy"},
    }
    return BadDataset(config=config, expected=expected, duplicate_ids={1})
