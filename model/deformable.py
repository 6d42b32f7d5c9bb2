"""Multi-scale deformable attention (Zhu et al., 2021).

The projections and their initialisation are ours (parameter names match the
official ``MSDeformAttn`` so checkpoints load by name); the bilinear sampling
itself is the pure-PyTorch ``MultiScaleDeformableAttention`` kept up to date
inside ``transformers``. That function is registered with the Hugging Face
kernel hub, so on a CUDA machine with the ``kernels`` package installed
:func:`enable_fast_kernels` swaps in the compiled kernel; CPU always uses the
PyTorch path.
"""

from __future__ import annotations

import logging
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformers.models.deformable_detr.modeling_deformable_detr import MultiScaleDeformableAttention

log = logging.getLogger(__name__)


class MSDeformAttn(nn.Module):
    def __init__(self, d_model: int = 256, n_levels: int = 4, n_heads: int = 8, n_points: int = 4) -> None:
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model {d_model} must be divisible by n_heads {n_heads}")
        self.d_model, self.n_levels, self.n_heads, self.n_points = d_model, n_levels, n_heads, n_points
        self.im2col_step = 64
        self.sampling_offsets = nn.Linear(d_model, n_heads * n_levels * n_points * 2)
        self.attention_weights = nn.Linear(d_model, n_heads * n_levels * n_points)
        self.value_proj = nn.Linear(d_model, d_model)
        self.output_proj = nn.Linear(d_model, d_model)
        self.core = MultiScaleDeformableAttention()
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # Offsets start on a ring around the reference point, one direction per
        # head and growing with the point index (Deformable DETR's init).
        nn.init.constant_(self.sampling_offsets.weight, 0.0)
        thetas = torch.arange(self.n_heads, dtype=torch.float32) * (2.0 * math.pi / self.n_heads)
        grid = torch.stack([thetas.cos(), thetas.sin()], -1)
        grid = (grid / grid.abs().max(-1, keepdim=True)[0]).view(self.n_heads, 1, 1, 2)
        grid = grid.repeat(1, self.n_levels, self.n_points, 1)
        grid = grid * torch.arange(1, self.n_points + 1, dtype=torch.float32).view(1, 1, -1, 1)
        with torch.no_grad():
            self.sampling_offsets.bias.copy_(grid.view(-1))
        nn.init.constant_(self.attention_weights.weight, 0.0)
        nn.init.constant_(self.attention_weights.bias, 0.0)
        nn.init.xavier_uniform_(self.value_proj.weight)
        nn.init.constant_(self.value_proj.bias, 0.0)
        nn.init.xavier_uniform_(self.output_proj.weight)
        nn.init.constant_(self.output_proj.bias, 0.0)

    def forward(
        self,
        query: Tensor,
        reference_points: Tensor,
        value_input: Tensor,
        spatial_shapes: Tensor,
        level_start_index: Tensor,
        padding_mask: Tensor | None = None,
    ) -> Tensor:
        """query (B, Q, C); reference_points (B, Q, L, 2|4) normalised; value_input (B, S, C)."""
        batch, num_queries, _ = query.shape
        seq_len = value_input.shape[1]
        value = self.value_proj(value_input)
        if padding_mask is not None:
            value = value.masked_fill(padding_mask[..., None], 0.0)
        value = value.view(batch, seq_len, self.n_heads, self.d_model // self.n_heads)
        offsets = self.sampling_offsets(query).view(batch, num_queries, self.n_heads, self.n_levels, self.n_points, 2)
        weights = self.attention_weights(query).view(batch, num_queries, self.n_heads, self.n_levels * self.n_points)
        weights = F.softmax(weights, -1).view(batch, num_queries, self.n_heads, self.n_levels, self.n_points)
        if reference_points.shape[-1] == 2:
            normaliser = torch.stack([spatial_shapes[..., 1], spatial_shapes[..., 0]], -1).to(offsets.dtype)
            locations = reference_points[:, :, None, :, None, :] + offsets / normaliser[None, None, None, :, None, :]
        elif reference_points.shape[-1] == 4:
            locations = (
                reference_points[:, :, None, :, None, :2]
                + offsets / self.n_points * reference_points[:, :, None, :, None, 2:] * 0.5
            )
        else:
            raise ValueError(f"reference points need 2 or 4 coordinates, got {reference_points.shape[-1]}")
        shapes_list = [(int(h), int(w)) for h, w in spatial_shapes.tolist()]
        out = self.core(value, spatial_shapes, shapes_list, level_start_index, locations, weights, self.im2col_step)
        return self.output_proj(out)


def enable_fast_kernels(model: nn.Module, device: str = "cuda") -> bool:
    """Swap the deformable sampling for the hub's CUDA kernel when it can be had.

    Needs a CUDA device and the optional ``kernels`` package (which fetches
    the kernel once from the Hugging Face hub). Returns whether it happened;
    the PyTorch path stays in place otherwise.
    """
    if device != "cuda" or not torch.cuda.is_available():
        return False
    try:
        from kernels import Mode, kernelize  # type: ignore[import-not-found]
    except ImportError:
        log.info("package 'kernels' not installed: multi-scale deformable attention stays on the PyTorch path")
        return False
    try:
        kernelize(model, device="cuda", mode=Mode.INFERENCE)
    except Exception as exc:  # noqa: BLE001 - a missing hub kernel must not stop inference
        log.warning("could not load the CUDA deformable-attention kernel (%s); using PyTorch", exc)
        return False
    return True
