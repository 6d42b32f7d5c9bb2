"""Image to network input: resize the shorter side (capped longer side) and normalise.

The official evaluation transform resizes the shorter side to 800 px with
the longer side at most 1333 px, then normalises with ImageNet statistics.
Boxes stay valid as they are normalised by the image size.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def target_size(width: int, height: int, min_size: int, max_size: int) -> tuple[int, int]:
    """(width, height) after DETR's resize rule."""
    short, long = min(width, height), max(width, height)
    size = float(min_size)
    if long / short * size > max_size:
        size = max_size * short / long
    if width < height:
        return int(round(size)), int(round(size * height / width))
    return int(round(size * width / height)), int(round(size))


def preprocess_image(image: Image.Image, min_size: int = 800, max_size: int = 1333) -> Tensor:
    """An RGB PIL image to a normalised (3, H, W) float tensor."""
    array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    tensor = torch.from_numpy(array).permute(2, 0, 1)
    width, height = image.size
    new_w, new_h = target_size(width, height, min_size, max_size)
    if (new_w, new_h) != (width, height):
        tensor = F.interpolate(tensor[None], size=(new_h, new_w), mode="bilinear", align_corners=False,
                               antialias=True)[0]
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (tensor - mean) / std
