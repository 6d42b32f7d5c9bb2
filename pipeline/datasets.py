"""Dataset adapters: COCO, Objects365 and any COCO-format detection dataset.

The adapter turns an annotation file into INGEST rows (one per image, with its
boxes) plus error rows for entries it cannot use. Annotations are held compactly
(boxes in flat arrays, large files streamed) and rows are built one image at a
time as parts are written; pixels are never read here (stages open images lazily, one batch at a
time). Crowd and degenerate boxes are dropped and counted, boxes spilling out of
the image are clipped and counted, and every image entry ends up either as a row
or as an error row with its reason.
"""

from __future__ import annotations

import contextlib
import io
import os
from array import array
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from pipeline.annotation_source import AnnotationSource, DatasetError
from pipeline.config import DatasetConfig
from pipeline.contracts import ErrorRow, Row
from pipeline.images import BadImage, resolve_image_path
from pipeline.splits import split_from_annotations
from pipeline.text_safety import clean_text, encodable

DEMO_DIR = Path(__file__).resolve().parent / "demo_data"
CLIPPED_DECIMALS = 6


@dataclass
class IngestResult:
    rows: list[Row]
    errors: list[ErrorRow]
    # Dropped/clipped boxes by reason: they are not image-level errors.
    box_stats: Counter = field(default_factory=Counter)


def image_root(ds: DatasetConfig) -> Path:
    """Directory that image ``file_name`` values are relative to."""
    if ds.kind == "demo":
        return _skimage_data_dir()
    assert ds.images is not None  # guaranteed by DatasetConfig validation
    return Path(ds.images)


def annotations_file(ds: DatasetConfig) -> Path:
    if ds.kind == "demo":
        return DEMO_DIR / "annotations.json"
    assert ds.annotations is not None
    return Path(ds.annotations)


def default_captions_file(ds: DatasetConfig) -> Path | None:
    """Human captions bundled with the dataset, for the ``oracle`` captioner."""
    return DEMO_DIR / "captions.json" if ds.kind == "demo" else None


def dataset_name(ds: DatasetConfig) -> str:
    return ds.name or ("coco" if ds.kind == "coco-format" else ds.kind)


def _skimage_data_dir() -> Path:
    try:
        import skimage
    except ImportError as exc:  # pragma: no cover - skimage is a pinned dependency
        raise DatasetError("the demo dataset needs scikit-image (its sample photos are the demo images)") from exc
    return Path(skimage.__file__).resolve().parent / "data"


class BoxStore:
    """Accepted boxes in flat arrays: ~40 bytes a box instead of a ~400-byte dict.

    Objects365 has 25 M boxes; as dicts they alone would need ~10 GB.
    """

    def __init__(self) -> None:
        self.image_id = array("q")
        self.object_id = array("q")
        self.category_id = array("q")
        self.xywh = array("d")

    def add(self, image_id: int, object_id: int, category_id: int, x: float, y: float, w: float, h: float) -> None:
        self.image_id.append(image_id)
        self.object_id.append(object_id)
        self.category_id.append(category_id)
        self.xywh.extend((x, y, w, h))

    def grouped(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Columns sorted by (image id, object id), plus where each image's run starts."""
        image_ids = np.frombuffer(self.image_id, dtype=np.int64)
        object_ids = np.frombuffer(self.object_id, dtype=np.int64)
        order = np.lexsort((object_ids, image_ids))
        xywh = np.frombuffer(self.xywh, dtype=np.float64).reshape(-1, 4)[order]
        return image_ids[order], object_ids[order], np.frombuffer(self.category_id, dtype=np.int64)[order], xywh


@dataclass
class ScannedDataset:
    """A validated dataset whose rows are built one image at a time."""

    name: str
    split: str
    images: dict[int, Row]
    categories: dict[int, str]
    boxes: BoxStore
    errors: list[ErrorRow]
    box_stats: Counter

    @property
    def image_ids(self) -> list[int]:
        return sorted(self.images)

    def rows(self) -> Iterator[Row]:
        """INGEST rows in image-id order; objects sorted by object id."""
        image_ids, object_ids, category_ids, xywh = self.boxes.grouped()
        starts = np.searchsorted(image_ids, np.array(self.image_ids, dtype=np.int64), side="left")
        ends = np.searchsorted(image_ids, np.array(self.image_ids, dtype=np.int64), side="right")
        for image_id, start, end in zip(self.image_ids, starts.tolist(), ends.tolist()):
            img = self.images[image_id]
            objects = [
                {"object_id": int(object_ids[i]), "category_id": int(category_ids[i]),
                 "category": self.categories[int(category_ids[i])],
                 "x": float(xywh[i, 0]), "y": float(xywh[i, 1]), "w": float(xywh[i, 2]), "h": float(xywh[i, 3])}
                for i in range(start, end)
            ]
            yield {"image_id": image_id, "file_name": img["file_name"], "width": img["width"],
                   "height": img["height"], "dataset": self.name, "data_split": self.split, "objects": objects}


def scan_dataset(ds: DatasetConfig) -> ScannedDataset:
    """Validate the annotations, keeping boxes compactly; no per-image rows are built yet."""
    source = AnnotationSource(annotations_file(ds))
    root = image_root(ds)
    if not root.is_dir():
        # Otherwise every image would become a "missing_image" row: one clear error instead.
        raise DatasetError(f"image folder not found: {root}")
    errors: list[ErrorRow] = []
    box_stats: Counter = Counter()
    categories = _read_categories(source.categories, source.path.name)
    images = _read_images(source.images, root, ds.kind, errors)
    if ds.max_images is not None:
        images = {i: images[i] for i in sorted(images)[: ds.max_images]}
    boxes = BoxStore()
    for ann in source.annotations():
        _add_annotation(ann, images, categories, boxes, errors, box_stats)
    if source.data is not None:
        coco = _pycocotools_index(source.data, images)
        box_stats["pycocotools_indexed_images"] = len(coco.imgs)
    split = ds.split or split_from_annotations(source.path)
    return ScannedDataset(dataset_name(ds), split, images, categories, boxes, errors, box_stats)


def read_dataset(ds: DatasetConfig) -> IngestResult:
    """Read and validate the annotations; rows come back sorted by image id."""
    scan = scan_dataset(ds)
    return IngestResult(rows=list(scan.rows()), errors=scan.errors, box_stats=scan.box_stats)


def _read_categories(entries: list[Any], source: str) -> dict[int, str]:
    categories: dict[int, str] = {}
    for cat in entries:
        if isinstance(cat, dict) and isinstance(cat.get("id"), int) and isinstance(cat.get("name"), str):
            categories[cat["id"]] = clean_text(cat["name"]).strip()  # names reach Parquet and the matcher
    if not categories:
        raise DatasetError(f"annotation file {source} has no usable categories (each needs an integer 'id' and a 'name')")
    return categories


def _read_images(entries: list[Any], root: Path, kind: str, errors: list[ErrorRow]) -> dict[int, Row]:
    images: dict[int, Row] = {}
    for entry in entries:
        image_id = entry.get("id") if isinstance(entry, dict) else None
        if not isinstance(image_id, int) or isinstance(image_id, bool):
            errors.append(ErrorRow(None, "ingest", "malformed_image_entry", f"image entry without an integer id: {str(entry)[:200]}"))
            continue
        problem = _image_entry_problem(entry)
        if problem:
            errors.append(ErrorRow(image_id, "ingest", "malformed_image_entry", problem))
            continue
        if image_id in images:
            errors.append(ErrorRow(image_id, "ingest", "duplicate_image_id", f"image id {image_id} appears more than once; kept the first entry"))
            continue
        file_name = _locate_file(root, entry["file_name"], kind)
        try:
            path = resolve_image_path(root, file_name)
        except BadImage as exc:
            errors.append(ErrorRow(image_id, "ingest", exc.reason, exc.detail))
            continue
        if not path.is_file():
            errors.append(ErrorRow(image_id, "ingest", "missing_image", f"{file_name} not found under the image root"))
            continue
        images[image_id] = {"file_name": file_name, "width": int(entry["width"]), "height": int(entry["height"])}
    return images


def _image_entry_problem(entry: dict) -> str | None:
    if not isinstance(entry.get("file_name"), str) or not entry["file_name"]:
        return "image entry has no file_name"
    if encodable(entry["file_name"]) != entry["file_name"]:
        return "image entry's file_name holds a lone UTF-16 surrogate: no file can have that name"
    for key in ("width", "height"):
        value = entry.get(key)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
            return f"image entry has invalid {key}: {value!r}"
    return None


def _locate_file(root: Path, file_name: str, kind: str) -> str:
    """Objects365 lists ``images/v1/patch8/x.jpg`` but is unpacked as ``patch8/x.jpg``."""
    if kind != "objects365" or (root / file_name).exists():
        return file_name
    parts = PurePosixPath(file_name.replace("\\", "/")).parts
    return str(PurePosixPath(*parts[-2:])) if len(parts) >= 2 else file_name


def _add_annotation(
    ann: Any,
    images: dict[int, Row],
    categories: dict[int, str],
    boxes: BoxStore,
    errors: list[ErrorRow],
    box_stats: Counter,
) -> None:
    if not isinstance(ann, dict):
        errors.append(ErrorRow(None, "ingest", "malformed_annotation", f"annotation is not an object: {str(ann)[:200]}"))
        return
    image_id = ann.get("image_id")
    if not isinstance(image_id, int) or image_id not in images:
        # Boxes of images that were rejected (or never listed) have nowhere to go.
        box_stats["orphan_annotation"] += 1
        return
    bbox = ann.get("bbox")
    ann_id = ann.get("id")
    if (
        not isinstance(ann_id, int)
        or not isinstance(bbox, list)
        or len(bbox) != 4
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v == v for v in bbox)
    ):
        errors.append(ErrorRow(image_id, "ingest", "malformed_annotation", f"annotation {ann_id!r}: needs integer 'id' and 'bbox' [x, y, w, h]"))
        return
    category_id = ann.get("category_id")
    if category_id not in categories:
        errors.append(ErrorRow(image_id, "ingest", "unknown_category", f"annotation {ann_id}: category_id {category_id!r} is not in categories"))
        return
    if ann.get("iscrowd", 0):
        box_stats["crowd_box_dropped"] += 1
        return
    img = images[image_id]
    x, y, w, h = (float(v) for v in bbox)
    x1, y1 = max(0.0, x), max(0.0, y)
    x2, y2 = min(float(img["width"]), x + w), min(float(img["height"]), y + h)
    if w <= 0 or h <= 0 or x2 - x1 < 1.0 or y2 - y1 < 1.0:
        box_stats["degenerate_box_dropped"] += 1
        return
    if (x1, y1, x2, y2) == (x, y, x + w, y + h):
        boxes.add(image_id, ann_id, int(category_id), x, y, w, h)
        return
    box_stats["box_clipped"] += 1
    # x2 - x1 carries float noise (167.53 + 24.7 - 167.53 = 24.700000000000017); annotation
    # coordinates have at most a few decimals, so 6 drop the noise and keep every real digit.
    boxes.add(image_id, ann_id, int(category_id), *(round(v, CLIPPED_DECIMALS) for v in (x1, y1, x2 - x1, y2 - y1)))


def _pycocotools_index(data: dict[str, Any], images: dict[int, Row]) -> Any:
    """Build pycocotools' index over the validated entries (the reference reader's view).

    Done after validation because pycocotools crashes on malformed entries; it
    serves as a cross-check that what we kept is a well-formed COCO dataset.
    """
    from pycocotools.coco import COCO

    clean = {
        "images": [{"id": i, **images[i]} for i in images],
        "annotations": [
            a
            for a in data["annotations"]
            if isinstance(a, dict) and a.get("image_id") in images and isinstance(a.get("id"), int) and isinstance(a.get("bbox"), list)
        ],
        "categories": [c for c in data["categories"] if isinstance(c, dict) and "id" in c],
    }
    coco = COCO()
    coco.dataset = clean
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def annotation_fingerprint(ds: DatasetConfig) -> dict[str, Any]:
    """Cheap identity of the annotation file for cache keys (size + mtime, not content)."""
    path = annotations_file(ds)
    try:
        stat = os.stat(path)
    except OSError:
        return {"annotations": str(path), "missing": True}
    return {"annotations": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
