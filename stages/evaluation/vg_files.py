"""Readers for the standard VG-SGG files (the VG150 split of Xu et al., 2017).

These are the files Neural Motifs and Scene-Graph-Benchmark distribute; put
them in one folder::

    VG-SGG-with-attri.h5            one row per image of image_data.json, minus 4 corrupted images
        split             (I,)    0 = train, 2 = test (val = the first 5,000 train images)
        img_to_first_box  (I,)    first row of the image's boxes in boxes_*/labels, -1 when none
        img_to_last_box   (I,)    last row (inclusive)
        img_to_first_rel  (I,)    first row of the image's relations in relationships/predicates, -1 when none
        img_to_last_rel   (I,)    last row (inclusive)
        boxes_1024        (B, 4)  cx, cy, w, h at a scale where the image's longer side is 1024 px
        labels            (B, 1)  object class, 1-based (0 is background)
        relationships     (M, 2)  subject and object as rows of boxes_* (global, not per image)
        predicates        (M, 1)  predicate, 1-based
    VG-SGG-dicts-with-attri.json    idx_to_label {"1": "airplane", ... "150"}, idx_to_predicate {"1": "above", ... "50"}
    image_data.json                 [{image_id, width, height, url, coco_id, flickr_id}, ...]

The reader returns :class:`storage.downstream.RelationImage` ground truth with
boxes in the image's pixels (``x1, y1, x2, y2``), 0-based labels and
predicates, and ``file_name = "<image_id>.jpg"`` (the VG_100K naming).
h5py is imported only when a file is read.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from storage.downstream import RelationImage

Split = Literal["train", "val", "test"]
H5_FILE = "VG-SGG-with-attri.h5"
DICTS_FILE = "VG-SGG-dicts-with-attri.json"
IMAGE_DATA_FILE = "image_data.json"
BOX_SCALE = 1024
NUM_VAL_IMAGES = 5000
# image_data.json lists these, the h5 file does not (unreadable JPEGs in the VG release).
CORRUPTED_IMAGES = frozenset({1592, 1722, 4616, 4617})


@dataclass
class VGSceneGraphs:
    """A split of VG scene graphs with its class vocabularies (0-based)."""

    object_classes: list[str]
    predicates: list[str]
    images: list[RelationImage] = field(default_factory=list)

    @property
    def num_relations(self) -> int:
        return sum(len(image.relations) for image in self.images)


def _vocabulary(mapping: dict[str, str]) -> list[str]:
    indices = sorted(int(i) for i in mapping)
    if indices != list(range(1, len(indices) + 1)):
        raise ValueError("VG dictionary indices must run 1..N")
    return [mapping[str(i)] for i in indices]


def read_vg_sgg(folder: Path | str, split: Split = "test", *, filter_empty_rels: bool = True,
                max_images: int | None = None, box_key: str = f"boxes_{BOX_SCALE}", h5_file: str = H5_FILE,
                dicts_file: str = DICTS_FILE) -> VGSceneGraphs:
    """The ``split`` of the VG-SGG files in ``folder`` (layout in the module docstring).

    ``h5_file``/``dicts_file`` name other files of the same layout (``VG-SGG.h5``,
    ``VG-SGG-dicts.json`` of the release without attributes).
    """
    import h5py

    folder = Path(folder)
    dicts = json.loads((folder / dicts_file).read_text())
    vocab = VGSceneGraphs(_vocabulary(dicts["idx_to_label"]), _vocabulary(dicts["idx_to_predicate"]))
    image_data = [e for e in json.loads((folder / IMAGE_DATA_FILE).read_text())
                  if int(e["image_id"]) not in CORRUPTED_IMAGES]
    with h5py.File(folder / h5_file, "r") as h5:
        data_split = h5["split"][:]
        if len(data_split) != len(image_data):
            raise ValueError(f"{h5_file} has {len(data_split)} images, {IMAGE_DATA_FILE} {len(image_data)} "
                             f"(after dropping the {len(CORRUPTED_IMAGES)} corrupted ones): mismatched files")
        first_box, last_box = h5["img_to_first_box"][:], h5["img_to_last_box"][:]
        first_rel, last_rel = h5["img_to_first_rel"][:], h5["img_to_last_rel"][:]
        selected = (data_split == (2 if split == "test" else 0)) & (first_box >= 0)
        if filter_empty_rels:
            selected &= first_rel >= 0
        indices = np.flatnonzero(selected)
        if split == "val":
            indices = indices[:NUM_VAL_IMAGES]
        elif split == "train":
            indices = indices[NUM_VAL_IMAGES:]
        if max_images is not None:
            indices = indices[:max_images]
        boxes_all = h5[box_key][:]
        labels_all = h5["labels"][:, 0]
        pairs_all = h5["relationships"][:]
        predicates_all = h5["predicates"][:, 0]
    scale = int(box_key.rsplit("_", 1)[1])
    for i in indices.tolist():
        info = image_data[i]
        b0, b1 = int(first_box[i]), int(last_box[i]) + 1
        cxcywh = boxes_all[b0:b1].astype(np.float64)
        xyxy = np.concatenate([cxcywh[:, :2] - cxcywh[:, 2:] / 2, cxcywh[:, :2] + cxcywh[:, 2:] / 2], axis=1)
        xyxy *= max(float(info["width"]), float(info["height"])) / scale
        if first_rel[i] >= 0:
            r0, r1 = int(first_rel[i]), int(last_rel[i]) + 1
            local = pairs_all[r0:r1].astype(np.int64) - b0
            if (local < 0).any() or (local >= b1 - b0).any():
                raise ValueError(f"image {info['image_id']}: a relation names a box of another image")
            relations = np.column_stack([local, predicates_all[r0:r1].astype(np.int64) - 1])
        else:
            relations = np.zeros((0, 3), np.int64)
        vocab.images.append(RelationImage(
            file_name=f"{int(info['image_id'])}.jpg",
            image_id=int(info["image_id"]),
            boxes=xyxy,
            labels=labels_all[b0:b1].astype(np.int64) - 1,
            relations=relations,
        ))
    return vocab


def restrict_predicates(graphs: VGSceneGraphs, keep: Sequence[str],
                        merge: dict[str, str] | None = None) -> VGSceneGraphs:
    """A refined split: only relations whose predicate is in ``keep``, re-indexed in ``keep``'s order.

    ``merge`` maps a dropped predicate onto a kept one first (e.g. ``{"on top of": "on"}``).
    Images left without relations are dropped (the split evaluates relations).
    The 20-predicate split of RelCLIP's distant-supervision setting is such a
    restriction; pass its predicate list (the paper's code that fixes it was not released).
    """
    keep = list(keep)
    if len(set(keep)) != len(keep):
        raise ValueError("refined predicates must be distinct")
    unknown = (set(keep) | set((merge or {}).values()) | set(merge or {})) - set(graphs.predicates)
    if unknown:
        raise ValueError(f"predicates not in the split: {sorted(unknown)}")
    new_index = {name: i for i, name in enumerate(keep)}
    for source, target in (merge or {}).items():
        if target not in new_index:
            raise ValueError(f"merge target {target!r} is not among the kept predicates")
        new_index.setdefault(source, new_index[target])
    old_to_new = np.asarray([new_index.get(name, -1) for name in graphs.predicates], dtype=np.int64)
    refined = VGSceneGraphs(graphs.object_classes, keep)
    for image in graphs.images:
        mapped = old_to_new[image.relations[:, 2]] if len(image.relations) else np.zeros(0, np.int64)
        kept = mapped >= 0
        if not kept.any():
            continue
        relations = np.column_stack([image.relations[kept, :2], mapped[kept]])
        refined.images.append(RelationImage(image.file_name, image.image_id, image.boxes, image.labels, relations))
    return refined
