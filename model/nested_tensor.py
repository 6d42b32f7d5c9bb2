"""Padded image batches with their padding masks (DETR's ``NestedTensor``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor


@dataclass
class NestedTensor:
    tensors: Tensor  # (B, C, H, W)
    mask: Tensor  # (B, H, W), True on padding

    def to(self, device: torch.device | str) -> "NestedTensor":
        return NestedTensor(self.tensors.to(device), self.mask.to(device))

    def decompose(self) -> tuple[Tensor, Tensor]:
        return self.tensors, self.mask

    def __len__(self) -> int:
        return self.tensors.shape[0]


def nested_tensor_from_images(images: Sequence[Tensor], size_divisibility: int = 1) -> NestedTensor:
    """Pad (C, H, W) images to a common size at the bottom/right, as DETR does."""
    if not images:
        raise ValueError("need at least one image")
    max_h = max(int(img.shape[-2]) for img in images)
    max_w = max(int(img.shape[-1]) for img in images)
    if size_divisibility > 1:
        max_h = -(-max_h // size_divisibility) * size_divisibility
        max_w = -(-max_w // size_divisibility) * size_divisibility
    first = images[0]
    batch = first.new_zeros((len(images), first.shape[0], max_h, max_w))
    mask = torch.ones((len(images), max_h, max_w), dtype=torch.bool, device=first.device)
    for i, img in enumerate(images):
        h, w = img.shape[-2:]
        batch[i, :, :h, :w] = img
        mask[i, :h, :w] = False
    return NestedTensor(batch, mask)


def as_nested_tensor(images: "NestedTensor | Tensor | Sequence[Tensor]") -> NestedTensor:
    if isinstance(images, NestedTensor):
        return images
    if isinstance(images, Tensor):
        if images.dim() != 4:
            raise ValueError(f"expected a (B, 3, H, W) tensor, got shape {tuple(images.shape)}")
        mask = torch.zeros(images.shape[0], *images.shape[-2:], dtype=torch.bool, device=images.device)
        return NestedTensor(images, mask)
    return nested_tensor_from_images(list(images))
