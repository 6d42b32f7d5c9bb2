"""From a sampled reference to a training sample: image loading, augmentation, pair bookkeeping."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
from PIL import Image

from stages.train.data import Skipped, TrainDataset, collate, draw_negative_pairs
from stages.train.records import Record, Relation
from stages.train.sampler import SampleRef
from stages.train.transforms import Annotated, AugmentConfig, eval_transform


class _OneRecord:
    name = "one"
    part_sizes = [1]

    def __init__(self, record: Record) -> None:
        self.record = record

    def get(self, part: int, row: int) -> Record:
        return self.record


def _record(root: Path, file_name: str = "img.png") -> Record:
    return Record(7, "t", file_name, root, [(0, 0, 40, 40), (50, 10, 90, 30), (10, 50, 30, 70)],
                  ["man", "ball", "dog"], [Relation(0, 1, "kicks", 0.9), Relation(2, 1, "sees", 0.5)])


def test_unreadable_image_is_skipped_not_fatal(tmp_path: Path) -> None:
    dataset = TrainDataset([_OneRecord(_record(tmp_path, "missing.png"))], eval_transform())
    item = dataset[SampleRef(0, 0, 0, seed=1)]
    assert item == Skipped(7, "missing_image")
    batch = collate([item])
    assert len(batch) == 0 and batch.skipped == [item]


def test_relations_of_cut_away_boxes_are_dropped(tmp_path: Path) -> None:
    record = _record(tmp_path)

    def keep_top_half(sample: Annotated, rng: random.Random) -> Annotated:
        boxes = sample.boxes.copy()
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, 45)
        return Annotated(sample.image.crop((0, 0, 100, 45)), boxes, sample.pairs)

    image = Image.new("RGB", (100, 80))
    sample = TrainDataset([_OneRecord(record)], keep_top_half).prepare(record, image, random.Random(0))
    assert sample.names == ["man", "ball"]
    assert sample.relations == [Relation(0, 1, "kicks", 0.9)]
    assert tuple(sample.image.shape) == (3, 45, 100)


def test_tagger_negatives_are_pairs_without_relations(tmp_path: Path) -> None:
    record = _record(tmp_path)
    dataset = TrainDataset([_OneRecord(record)], eval_transform(AugmentConfig().scaled(0.1)),
                           negatives_per_positive=2.0, max_pairs=5)
    image = Image.new("RGB", (100, 80))
    a = dataset.prepare(record, image, random.Random(3))
    b = dataset.prepare(record, image, random.Random(3))
    assert a.negative_pairs == b.negative_pairs and len(a.negative_pairs) == 3  # 5 slots - 2 positive pairs
    assert not {(0, 1), (2, 1)} & set(a.negative_pairs)
    assert all(s != o for s, o in a.negative_pairs)
    assert draw_negative_pairs(1, set(), 4, random.Random(0)) == []


def test_batch_pads_images_and_masks_padding(tmp_path: Path) -> None:
    Image.fromarray(np.zeros((80, 100, 3), dtype=np.uint8)).save(tmp_path / "img.png")
    Image.fromarray(np.zeros((100, 60, 3), dtype=np.uint8)).save(tmp_path / "tall.png")
    items = [TrainDataset([_OneRecord(_record(tmp_path, name))], eval_transform(AugmentConfig().scaled(0.1)))
             [SampleRef(0, 0, 0, 0)] for name in ("img.png", "tall.png")]
    batch = collate(items)
    height, width = batch.images.tensors.shape[-2:]
    for i, item in enumerate(items):
        h, w = item.image.shape[-2:]
        assert not batch.images.mask[i, :h, :w].any()
        assert int(batch.images.mask[i].sum()) == height * width - h * w
        assert batch.images.tensors[i, :, :h, :w].equal(item.image)
