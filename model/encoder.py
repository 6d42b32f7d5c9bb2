"""The ALIF encoder: deformable vision layers interleaved with fusion and language layers.

Layout for ``alif_blocks = N_ALIF`` and ``alif_vision_layers = N_v``: before
vision layers ``0, N_v, 2 N_v, ...`` one fusion block mixes vision and label
tokens, then one language layer (a layer of the text encoder's own kind)
re-encodes the label tokens (sparsified language encoding). Each block's
language output is kept: the heads may classify with any stage.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .alif import FusionBlock
from .deformable import MSDeformAttn
from .text_encoder import LanguageLayer


class DeformableEncoderLayer(nn.Module):
    """Post-norm deformable self-attention + FFN (Deformable DETR encoder layer)."""

    def __init__(self, d_model: int, d_ffn: int, dropout: float, n_levels: int, n_heads: int, n_points: int) -> None:
        super().__init__()
        self.self_attn = MSDeformAttn(d_model, n_levels, n_heads, n_points)
        self.dropout1 = nn.Dropout(dropout)
        self.norm1 = nn.LayerNorm(d_model)
        self.linear1 = nn.Linear(d_model, d_ffn)
        self.dropout2 = nn.Dropout(dropout)
        self.linear2 = nn.Linear(d_ffn, d_model)
        self.dropout3 = nn.Dropout(dropout)
        self.norm2 = nn.LayerNorm(d_model)

    def forward(self, src: Tensor, pos: Tensor, reference_points: Tensor, spatial_shapes: Tensor,
                level_start_index: Tensor, padding_mask: Tensor) -> Tensor:
        attended = self.self_attn(src + pos, reference_points, src, spatial_shapes, level_start_index, padding_mask)
        src = self.norm1(src + self.dropout1(attended))
        ffn = self.linear2(self.dropout2(F.relu(self.linear1(src))))
        return self.norm2(src + self.dropout3(ffn))


def encoder_reference_points(spatial_shapes: Tensor, valid_ratios: Tensor) -> Tensor:
    """Centre of every feature-map cell, normalised to the valid area, for every level: (B, S, L, 2)."""
    points = []
    for level, (height, width) in enumerate(spatial_shapes.tolist()):
        ref_y, ref_x = torch.meshgrid(
            torch.linspace(0.5, height - 0.5, height, dtype=torch.float32, device=valid_ratios.device),
            torch.linspace(0.5, width - 0.5, width, dtype=torch.float32, device=valid_ratios.device),
            indexing="ij",
        )
        ref_y = ref_y.reshape(-1)[None] / (valid_ratios[:, None, level, 1] * height)
        ref_x = ref_x.reshape(-1)[None] / (valid_ratios[:, None, level, 0] * width)
        points.append(torch.stack((ref_x, ref_y), -1))
    reference = torch.cat(points, 1)
    return reference[:, :, None] * valid_ratios[:, None]


class ALIFEncoder(nn.Module):
    def __init__(self, vision_layers: list[DeformableEncoderLayer], fusion_blocks: list[FusionBlock],
                 language_layers: list[nn.Module], fuse_last_level_only: bool) -> None:
        super().__init__()
        if len(vision_layers) % len(fusion_blocks):
            raise ValueError("the number of vision layers must be a multiple of the number of ALIF blocks")
        self.layers = nn.ModuleList(vision_layers)
        self.fusion = nn.ModuleList(fusion_blocks)
        self.language_layers = nn.ModuleList(LanguageLayer(layer) for layer in language_layers)
        self.interval = len(vision_layers) // len(fusion_blocks)
        self.fuse_last_level_only = fuse_last_level_only

    def forward(self, src: Tensor, pos: Tensor, padding_mask: Tensor, spatial_shapes: Tensor,
                level_start_index: Tensor, valid_ratios: Tensor, lang: Tensor,
                lang_pad: Tensor) -> tuple[Tensor, list[Tensor]]:
        """Returns the vision memory (B, S, C) and the language tokens after every block."""
        reference_points = encoder_reference_points(spatial_shapes, valid_ratios)
        start = int(level_start_index[-1]) if self.fuse_last_level_only else 0
        stages: list[Tensor] = []
        for index, layer in enumerate(self.layers):
            if index % self.interval == 0:
                block = index // self.interval
                fused, lang = self.fusion[block](src[:, start:], lang, pos[:, start:], padding_mask[:, start:], lang_pad)
                src = torch.cat((src[:, :start], fused), dim=1) if start else fused
                lang = self.language_layers[block](lang, lang_pad)
                stages.append(lang)
            src = layer(src, pos, reference_points, spatial_shapes, level_start_index, padding_mask)
        return src, stages
