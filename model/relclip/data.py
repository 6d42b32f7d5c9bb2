"""Relation samples for the RelCLIP classifier, and their frozen CLIP features.

A sample is one labelled ⟨subject, predicate, object⟩ with both boxes on a
real image. Sources: any training record with ``boxes``/``names``/``relations``
(relfactory shards and the other sources of :mod:`stages.train.sources`), and
the official V-COCO annotation files on COCO images.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from model.relclip.clip_encoder import Box, ClipEncoder, crop, union_box

# V-COCO roles become relation texts: the object of "hold" is what is held,
# the instrument of "cut" is what one cuts with.
VCOCO_ROLE_TEXT = {"obj": "{action}", "instr": "{action} with"}


@dataclass(frozen=True)
class RelationSample:
    image_path: Path
    subject_box: Box  # x1, y1, x2, y2 pixels
    object_box: Box
    subject: str
    object: str
    predicate: str


@dataclass
class RelationFeatures:
    """Frozen CLIP embeddings of each sample's subject, object and union crops, with class indices."""

    subject: Tensor  # (Q, D)
    object: Tensor
    union: Tensor
    subject_class: Tensor  # (Q,) long, into the entity vocabulary
    object_class: Tensor

    def __len__(self) -> int:
        return int(self.subject.shape[0])

    def take(self, index: Tensor) -> "RelationFeatures":
        return RelationFeatures(self.subject[index], self.object[index], self.union[index],
                                self.subject_class[index], self.object_class[index])


def pair_truth(samples: Sequence[RelationSample], predicates: Sequence[str]) -> Tensor:
    """``(Q, R)`` bool: every predicate annotated for sample q's pair (same image and boxes), its own included."""
    index = {p: i for i, p in enumerate(predicates)}
    by_pair: dict[tuple[Path, Box, Box], set[int]] = {}
    for s in samples:
        by_pair.setdefault((s.image_path, s.subject_box, s.object_box), set()).add(index[s.predicate])
    truth = torch.zeros((len(samples), len(predicates)), dtype=torch.bool)
    for q, s in enumerate(samples):
        truth[q, sorted(by_pair[(s.image_path, s.subject_box, s.object_box)])] = True
    return truth


def samples_from_records(records: Iterable[Any]) -> list[RelationSample]:
    """Samples from training records (``stages.train.records.Record``: boxes, names, relations)."""
    samples = []
    for record in records:
        path = Path(record.image_root) / record.file_name
        for rel in record.relations:
            samples.append(RelationSample(path, tuple(record.boxes[rel.subject]), tuple(record.boxes[rel.object]),
                                          record.names[rel.subject], record.names[rel.object], rel.predicate))
    return samples


def vcoco_samples(vcoco_json: Path | str, instances_json: Path | str, image_root: Path | str) -> list[RelationSample]:
    """Positive V-COCO (person, action, role object) triplets on the COCO images of ``instances_json``."""
    coco = json.loads(Path(instances_json).read_text())
    images = {int(im["id"]): im["file_name"] for im in coco["images"]}
    annotations = {int(a["id"]): a for a in coco["annotations"]}
    categories = {int(c["id"]): c["name"] for c in coco["categories"]}

    def box(ann: dict[str, Any]) -> Box:
        x, y, w, h = (float(v) for v in ann["bbox"])
        return (x, y, x + w, y + h)

    samples = []
    for action in json.loads(Path(vcoco_json).read_text()):
        roles = np.asarray(action["role_object_id"], dtype=np.int64).reshape(len(action["role_name"]), -1).T
        labels = np.asarray(action["label"], dtype=np.int64).reshape(-1)
        image_ids = np.asarray(action["image_id"], dtype=np.int64).reshape(-1)
        for row in np.flatnonzero(labels == 1):
            image_id = int(image_ids[row])
            agent = annotations.get(int(roles[row, 0]))
            if image_id not in images or agent is None:
                continue
            for r, role in enumerate(action["role_name"][1:], start=1):
                target = annotations.get(int(roles[row, r]))
                if target is None or role not in VCOCO_ROLE_TEXT:
                    continue
                samples.append(RelationSample(
                    Path(image_root) / images[image_id], box(agent), box(target),
                    categories[int(agent["category_id"])], categories[int(target["category_id"])],
                    VCOCO_ROLE_TEXT[role].format(action=action["action_name"])))
    return samples


def extract_features(encoder: ClipEncoder, samples: Sequence[RelationSample],
                     entity_classes: Sequence[str]) -> RelationFeatures:
    """CLIP embeddings of every sample's crops; each image is opened once."""
    from PIL import Image

    if not samples:
        raise ValueError("no relation samples to embed")
    index = {name: i for i, name in enumerate(entity_classes)}
    crops: list[Image.Image] = []
    by_image: dict[Path, list[int]] = {}
    for i, sample in enumerate(samples):
        by_image.setdefault(sample.image_path, []).append(i)
    order: list[int] = []
    for path, members in by_image.items():
        with Image.open(path) as opened:
            pixels = opened.convert("RGB")
        for i in members:
            s = samples[i]
            crops += [crop(pixels, s.subject_box), crop(pixels, s.object_box),
                      crop(pixels, union_box(s.subject_box, s.object_box))]
            order.append(i)
    embedded = encoder.encode_images(crops).reshape(len(order), 3, -1)
    features = torch.empty_like(embedded)
    features[torch.tensor(order, dtype=torch.long)] = embedded
    return RelationFeatures(
        subject=features[:, 0], object=features[:, 1], union=features[:, 2],
        subject_class=torch.tensor([index[s.subject] for s in samples], dtype=torch.long),
        object_class=torch.tensor([index[s.object] for s in samples], dtype=torch.long),
    )
