"""DETR-style augmentation on PIL images and pixel boxes, without torchvision.

Training: random horizontal flip, then with probability 1/2 either a
multi-scale resize (short side drawn from 480..800, long side <= 1333) or a
resize to 400/500/600, a random crop of 384..600 pixels and the multi-scale
resize. Evaluation: short side 800, long side <= 1333. Every random draw comes
from the ``random.Random`` passed in, seeded per sample by the sampler, which
makes a resumed run augment exactly as an uninterrupted one.

A crop that would cut away every relation of the image is redrawn (a few
times, then skipped): an image with no surviving pair teaches nothing.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from typing import Protocol, Sequence

import numpy as np
import torch
from PIL import Image
from torch import Tensor

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class Annotated:
    """An image with its boxes (N, 4) x1, y1, x2, y2 in pixels and relation pairs (R, 2) of box indices."""

    image: Image.Image
    boxes: np.ndarray
    pairs: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), dtype=np.int64))

    def valid_boxes(self) -> np.ndarray:
        return (self.boxes[:, 2] > self.boxes[:, 0]) & (self.boxes[:, 3] > self.boxes[:, 1])

    def surviving_pairs(self) -> int:
        """Pairs whose boxes both kept some area; object index -1 (no object) always survives."""
        if not len(self.pairs):
            return 0
        valid = np.append(self.valid_boxes(), True)  # index -1 lands on this extra True
        return int((valid[self.pairs[:, 0]] & valid[self.pairs[:, 1]]).sum())


class Transform(Protocol):
    def __call__(self, sample: Annotated, rng: random.Random) -> Annotated: ...


def hflip(sample: Annotated) -> Annotated:
    width = sample.image.width
    boxes = sample.boxes.copy()
    boxes[:, [0, 2]] = width - sample.boxes[:, [2, 0]]
    return replace(sample, image=sample.image.transpose(Image.Transpose.FLIP_LEFT_RIGHT), boxes=boxes)


def target_size(width: int, height: int, short_side: int, max_size: int | None) -> tuple[int, int]:
    """(width, height) with the short side ``short_side`` unless the long side would pass ``max_size``."""
    size = short_side
    if max_size is not None:
        small, large = float(min(width, height)), float(max(width, height))
        if large / small * size > max_size:
            size = int(round(max_size * small / large))
    if width <= height:
        return size, max(1, int(size * height / width))
    return max(1, int(size * width / height)), size


def resize(sample: Annotated, short_side: int, max_size: int | None = None) -> Annotated:
    width, height = sample.image.size
    new_w, new_h = target_size(width, height, short_side, max_size)
    scale = np.array([new_w / width, new_h / height, new_w / width, new_h / height], dtype=np.float32)
    return replace(sample, image=sample.image.resize((new_w, new_h), Image.Resampling.BILINEAR),
                   boxes=sample.boxes * scale)


def crop(sample: Annotated, top: int, left: int, height: int, width: int) -> Annotated:
    """Cut a region; boxes are shifted and clipped (fully cut-away boxes end with zero area)."""
    boxes = sample.boxes - np.array([left, top, left, top], dtype=np.float32)
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, width)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, height)
    return replace(sample, image=sample.image.crop((left, top, left + width, top + height)), boxes=boxes)


@dataclass
class RandomHorizontalFlip:
    p: float = 0.5

    def __call__(self, sample: Annotated, rng: random.Random) -> Annotated:
        return hflip(sample) if rng.random() < self.p else sample


@dataclass
class RandomResize:
    sizes: Sequence[int]
    max_size: int | None = None

    def __call__(self, sample: Annotated, rng: random.Random) -> Annotated:
        return resize(sample, rng.choice(list(self.sizes)), self.max_size)


@dataclass
class RandomSizeCrop:
    min_size: int
    max_size: int
    max_tries: int = 10

    def __call__(self, sample: Annotated, rng: random.Random) -> Annotated:
        img_w, img_h = sample.image.size
        had_pairs = sample.surviving_pairs() > 0
        for _ in range(self.max_tries):
            w = rng.randint(min(self.min_size, img_w), min(img_w, self.max_size))
            h = rng.randint(min(self.min_size, img_h), min(img_h, self.max_size))
            top, left = rng.randint(0, img_h - h), rng.randint(0, img_w - w)
            out = crop(sample, top, left, h, w)
            if not had_pairs or out.surviving_pairs() > 0:
                return out
        return sample


@dataclass
class RandomSelect:
    first: Transform
    second: Transform
    p: float = 0.5

    def __call__(self, sample: Annotated, rng: random.Random) -> Annotated:
        return self.first(sample, rng) if rng.random() < self.p else self.second(sample, rng)


@dataclass
class Compose:
    transforms: Sequence[Transform]

    def __call__(self, sample: Annotated, rng: random.Random) -> Annotated:
        for t in self.transforms:
            sample = t(sample, rng)
        return sample


def to_tensor(image: Image.Image, mean: Sequence[float] = IMAGENET_MEAN,
              std: Sequence[float] = IMAGENET_STD) -> Tensor:
    """(3, H, W) float tensor, normalised with ImageNet statistics."""
    array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    tensor = torch.from_numpy(array).permute(2, 0, 1).contiguous()
    return (tensor - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)


def normalized_cxcywh(boxes: np.ndarray, width: int, height: int) -> Tensor:
    b = torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    cxcywh = torch.stack(((b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2, b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]), -1)
    return cxcywh / torch.tensor([width, height, width, height], dtype=torch.float32)


@dataclass(frozen=True)
class AugmentConfig:
    """Sizes of the DETR recipe; ``scaled`` shrinks them all for tiny models."""

    scales: tuple[int, ...] = tuple(range(480, 801, 32))
    max_size: int = 1333
    pre_crop_scales: tuple[int, ...] = (400, 500, 600)
    crop_min: int = 384
    crop_max: int = 600
    eval_size: int = 800
    flip: bool = True

    def scaled(self, factor: float) -> "AugmentConfig":
        def s(v: int) -> int:
            return max(8, int(round(v * factor)))

        return AugmentConfig(tuple(sorted({s(v) for v in self.scales})), s(self.max_size),
                             tuple(sorted({s(v) for v in self.pre_crop_scales})), s(self.crop_min),
                             s(self.crop_max), s(self.eval_size), self.flip)


def train_transform(cfg: AugmentConfig = AugmentConfig()) -> Transform:
    multi_scale = RandomResize(cfg.scales, cfg.max_size)
    steps: list[Transform] = [RandomHorizontalFlip()] if cfg.flip else []
    steps.append(RandomSelect(multi_scale, Compose([RandomResize(cfg.pre_crop_scales),
                                                    RandomSizeCrop(cfg.crop_min, cfg.crop_max), multi_scale])))
    return Compose(steps)


def eval_transform(cfg: AugmentConfig = AugmentConfig()) -> Transform:
    return RandomResize([cfg.eval_size], cfg.max_size)
