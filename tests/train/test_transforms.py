"""DETR-style augmentation without torchvision."""

from __future__ import annotations

import random

import numpy as np
import torch
from PIL import Image

from stages.train.transforms import (
    Annotated,
    AugmentConfig,
    RandomSizeCrop,
    crop,
    hflip,
    normalized_cxcywh,
    resize,
    target_size,
    to_tensor,
    train_transform,
)


def _sample(width: int = 200, height: int = 100) -> Annotated:
    image = Image.fromarray(np.arange(width * height * 3, dtype=np.uint8).reshape(height, width, 3))
    boxes = np.array([[10, 20, 60, 80], [100, 10, 190, 90]], dtype=np.float32)
    return Annotated(image, boxes, np.array([[0, 1]]))


def test_flip_mirrors_pixels_and_boxes() -> None:
    sample = _sample()
    out = hflip(sample)
    assert np.array_equal(np.asarray(out.image)[:, ::-1], np.asarray(sample.image))
    assert out.boxes.tolist() == [[140, 20, 190, 80], [10, 10, 100, 90]]


def test_resize_short_side_and_long_side_cap() -> None:
    assert target_size(1000, 500, 800, 1333) == (1332, 666)  # as DETR rounds
    assert target_size(500, 1000, 400, 1333) == (400, 800)
    out = resize(_sample(), 50)
    assert out.image.size == (100, 50)
    assert out.boxes[0].tolist() == [5, 10, 30, 40]


def test_crop_clips_boxes_and_marks_cut_away_ones() -> None:
    out = crop(_sample(), top=0, left=0, height=100, width=80)
    assert out.image.size == (80, 100)
    assert out.boxes[0].tolist() == [10, 20, 60, 80]
    assert out.valid_boxes().tolist() == [True, False]
    assert out.surviving_pairs() == 0


def test_random_crop_is_redrawn_until_a_relation_survives() -> None:
    crop_op = RandomSizeCrop(60, 80, max_tries=50)
    for seed in range(20):
        out = crop_op(_sample(), random.Random(seed))
        assert out.surviving_pairs() == 1


def test_no_object_relations_survive_any_crop() -> None:
    sample = Annotated(_sample().image, _sample().boxes, np.array([[0, -1]]))
    assert crop(sample, 0, 0, 100, 80).surviving_pairs() == 1


def test_same_seed_same_augmentation() -> None:
    transform = train_transform(AugmentConfig().scaled(0.2))
    a = transform(_sample(), random.Random(5))
    b = transform(_sample(), random.Random(5))
    assert a.image.size == b.image.size and np.array_equal(a.boxes, b.boxes)
    assert max(a.image.size) <= AugmentConfig().scaled(0.2).max_size


def test_tensor_and_box_normalisation() -> None:
    tensor = to_tensor(Image.new("RGB", (4, 2), (255, 0, 0)))
    assert tensor.shape == (3, 2, 4)
    assert torch.allclose(tensor[0], torch.full((2, 4), (1 - 0.485) / 0.229))
    boxes = normalized_cxcywh(np.array([[0, 0, 100, 50]]), 200, 100)
    assert torch.allclose(boxes, torch.tensor([[0.25, 0.25, 0.5, 0.5]]))
