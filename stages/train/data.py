"""From sampled references to model-ready batches.

:class:`TrainDataset` turns a :class:`~stages.train.sampler.SampleRef` into a
:class:`TrainSample`: the image opened safely, boxes clipped, the DETR
augmentation applied with the reference's own seed, relations whose boxes
did not survive the crop dropped. :func:`build_targets` then maps a batch onto
its label sequence (Label Sequence Extension happens between the two, once
per batch, in the training loop).

A record whose image cannot be read is not fatal: the sample comes back as a
:class:`Skipped` and the batch is one image shorter.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from model.nested_tensor import NestedTensor, nested_tensor_from_images
from pipeline.images import BadImage, load_image

from .labels import pseudo_label_rows
from .records import Record, Relation
from .sampler import SampleRef
from .sources import Source
from .transforms import Annotated, Transform, normalized_cxcywh, to_tensor

# A box narrower than this (pixels, after augmentation) is treated as cut away.
MIN_BOX_SIDE = 1.0
# Object index of a relation without an object (V-COCO roles such as "stand").
NO_OBJECT = -1


@dataclass
class TrainSample:
    image: Tensor  # (3, H, W) normalised
    boxes: Tensor  # (N, 4) cx, cy, w, h in [0, 1]
    names: list[str]
    relations: list[Relation]  # indices into boxes, most confident first
    image_id: int
    dataset: str
    # R-Tagger mode: box pairs with no relation, supervised as negatives.
    negative_pairs: list[tuple[int, int]] = field(default_factory=list)


@dataclass(frozen=True)
class Skipped:
    image_id: int
    reason: str


@dataclass
class Batch:
    images: NestedTensor
    samples: list[TrainSample]
    skipped: list[Skipped]

    def __len__(self) -> int:
        return len(self.samples)


def unique_pairs(relations: Sequence[Relation]) -> list[tuple[int, int]]:
    return list(dict.fromkeys((r.subject, r.object) for r in relations))


def draw_negative_pairs(n_boxes: int, positives: set[tuple[int, int]], count: int,
                        rng: random.Random) -> list[tuple[int, int]]:
    """Up to ``count`` ordered pairs of distinct boxes that carry no relation."""
    if count <= 0 or n_boxes < 2:
        return []
    candidates = [(s, o) for s in range(n_boxes) for o in range(n_boxes) if s != o and (s, o) not in positives]
    rng.shuffle(candidates)
    return candidates[:count]


class TrainDataset:
    """Map-style dataset indexed by :class:`SampleRef` (what the sampler yields)."""

    def __init__(self, sources: Sequence[Source], transform: Transform, *, negatives_per_positive: float = 0.0,
                 max_pairs: int | None = None) -> None:
        self.sources = list(sources)
        self.transform = transform
        self.negatives_per_positive = negatives_per_positive
        self.max_pairs = max_pairs

    def __getitem__(self, ref: SampleRef) -> TrainSample | Skipped:
        record = self.sources[ref.source].get(ref.part, ref.row)
        try:
            image = load_image(record.image_root, record.file_name)
        except BadImage as exc:
            return Skipped(record.image_id, exc.reason)
        return self.prepare(record, image, random.Random(ref.seed))

    def prepare(self, record: Record, image: Image.Image, rng: random.Random) -> TrainSample:
        """Clip, augment and re-index one record whose pixels are ``image``."""
        width, height = image.size
        boxes = np.asarray(record.boxes, dtype=np.float32).reshape(-1, 4)
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, width)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, height)
        pairs = np.asarray(unique_pairs(record.relations), dtype=np.int64).reshape(-1, 2)
        out = self.transform(Annotated(image, boxes, pairs), rng)

        sides = np.stack((out.boxes[:, 2] - out.boxes[:, 0], out.boxes[:, 3] - out.boxes[:, 1]), 1)
        alive = np.flatnonzero((sides >= MIN_BOX_SIDE).all(1)) if len(sides) else np.zeros(0, dtype=np.int64)
        new_index = {int(old): new for new, old in enumerate(alive)}
        new_index[NO_OBJECT] = NO_OBJECT
        relations = [Relation(new_index[r.subject], new_index[r.object], r.predicate, r.confidence)
                     for r in record.relations if r.subject in new_index and r.object in new_index]
        negatives: list[tuple[int, int]] = []
        if self.negatives_per_positive > 0:
            positives = unique_pairs(relations)
            wanted = int(round(len(positives) * self.negatives_per_positive))
            if self.max_pairs is not None:
                wanted = min(wanted, self.max_pairs - min(len(positives), self.max_pairs))
            negatives = draw_negative_pairs(len(alive), set(positives), wanted, rng)

        new_w, new_h = out.image.size
        return TrainSample(
            image=to_tensor(out.image),
            boxes=normalized_cxcywh(out.boxes[alive], new_w, new_h),
            names=[record.names[int(i)] for i in alive],
            relations=relations,
            image_id=record.image_id,
            dataset=record.dataset,
            negative_pairs=negatives,
        )


def collate(items: Sequence[TrainSample | Skipped]) -> Batch:
    samples = [s for s in items if isinstance(s, TrainSample)]
    skipped = [s for s in items if isinstance(s, Skipped)]
    images = nested_tensor_from_images([s.image for s in samples]) if samples else NestedTensor(
        torch.zeros((0, 3, 1, 1)), torch.ones((0, 1, 1), dtype=torch.bool))
    return Batch(images, samples, skipped)


def batch_texts(samples: Sequence[TrainSample]) -> tuple[list[str], list[str]]:
    """The batch's entity and relation texts, unique, in first-seen order (the positives of LSE)."""
    entities: dict[str, None] = {}
    relations: dict[str, None] = {}
    for sample in samples:
        entities.update(dict.fromkeys(sample.names))
        relations.update(dict.fromkeys(r.predicate for r in sample.relations))
    return list(entities), list(relations)


def build_targets(samples: Sequence[TrainSample], entity_texts: Sequence[str], relation_texts: Sequence[str],
                  max_pairs: int, similarity: Tensor | None = None,
                  pseudo_threshold: float = 1.0) -> list[dict[str, Tensor]]:
    """Per image: the model's pair targets against the batch's label sequence.

    Pairs keep the relations' confidence order, so when an image has more
    pairs than query slots the most confident ones are the ones trained on.
    ``similarity`` (R, R) between relation texts turns on Relation Pseudo-Labels.
    """
    entity_index = {t: i for i, t in enumerate(entity_texts)}
    relation_index = {t: i for i, t in enumerate(relation_texts)}
    targets = []
    for sample in samples:
        pairs = unique_pairs(sample.relations)[:max_pairs]
        slot = {pair: i for i, pair in enumerate(pairs)}
        room = max_pairs - len(pairs)
        pairs += sample.negative_pairs[:room]
        verbs = torch.zeros((len(pairs), len(relation_texts)))
        for rel in sample.relations:
            i = slot.get((rel.subject, rel.object))
            if i is not None:
                verbs[i, relation_index[rel.predicate]] = 1.0
        if similarity is not None and len(slot):
            verbs[: len(slot)] = pseudo_label_rows(verbs[: len(slot)], similarity, pseudo_threshold)
        # A missing object has an all-zero box (the losses skip it) and the no-object token,
        # which the model appends after the entity texts.
        no_object = len(entity_texts)
        boxes = torch.cat((sample.boxes.reshape(-1, 4), torch.zeros((1, 4))))  # row -1 = no object
        subjects = torch.as_tensor([s for s, _ in pairs], dtype=torch.long)
        objects = torch.as_tensor([o for _, o in pairs], dtype=torch.long)
        names = sample.names
        targets.append({
            "sub_boxes": boxes[subjects].reshape(-1, 4),
            "obj_boxes": boxes[objects].reshape(-1, 4),
            "sub_labels": torch.as_tensor([entity_index[names[s]] for s, _ in pairs], dtype=torch.long),
            "obj_labels": torch.as_tensor([no_object if o == NO_OBJECT else entity_index[names[o]]
                                           for _, o in pairs], dtype=torch.long),
            "verb_labels": verbs,
        })
    return targets
