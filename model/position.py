"""Sine position encodings: DETR's 2-d image encoding and DAB-DETR's box encoding."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class PositionEmbeddingSine(nn.Module):
    """DETR's normalised sine encoding of (y, x) over the unpadded image area.

    RLIPv2 builds it with ``num_pos_feats = hidden_dim // 2`` and
    ``normalize=True``; it has no parameters, so nothing to load.
    """

    def __init__(self, num_pos_feats: int = 128, temperature: float = 10000.0, scale: float = 2 * math.pi) -> None:
        super().__init__()
        self.num_pos_feats = num_pos_feats
        self.temperature = temperature
        self.scale = scale

    def forward(self, mask: Tensor) -> Tensor:
        not_mask = ~mask
        y_embed = not_mask.cumsum(1, dtype=torch.float32)
        x_embed = not_mask.cumsum(2, dtype=torch.float32)
        eps = 1e-6
        y_embed = y_embed / (y_embed[:, -1:, :] + eps) * self.scale
        x_embed = x_embed / (x_embed[:, :, -1:] + eps) * self.scale
        dim_t = torch.arange(self.num_pos_feats, dtype=torch.float32, device=mask.device)
        dim_t = self.temperature ** (2 * (dim_t // 2) / self.num_pos_feats)
        pos_x = _interleave_sin_cos(x_embed[..., None] / dim_t)
        pos_y = _interleave_sin_cos(y_embed[..., None] / dim_t)
        return torch.cat((pos_y, pos_x), dim=3).permute(0, 3, 1, 2)


def _interleave_sin_cos(angles: Tensor) -> Tensor:
    return torch.stack((angles[..., 0::2].sin(), angles[..., 1::2].cos()), dim=-1).flatten(-2)


def box_sine_embedding(boxes: Tensor, hidden_dim: int, temperature: float = 10000.0) -> Tensor:
    """DAB-DETR's encoding of (cx, cy, w, h) anchors: ``hidden_dim // 2`` features per
    coordinate, concatenated as (y, x, w, h) -> ``2 * hidden_dim`` features."""
    num_feats = hidden_dim // 2
    dim_t = torch.arange(num_feats, dtype=torch.float32, device=boxes.device)
    dim_t = temperature ** (2 * (dim_t // 2) / num_feats)
    scaled = boxes * (2 * math.pi)
    parts = [_interleave_sin_cos(scaled[..., i, None] / dim_t) for i in range(boxes.shape[-1])]
    if boxes.shape[-1] == 2:
        return torch.cat((parts[1], parts[0]), dim=-1)
    if boxes.shape[-1] == 4:
        return torch.cat((parts[1], parts[0], parts[2], parts[3]), dim=-1)
    raise ValueError(f"expected 2 or 4 coordinates, got {boxes.shape[-1]}")
