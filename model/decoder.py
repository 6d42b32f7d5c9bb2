"""Deformable decoders of ParSeD: parallel entity detection and sequential relation inference.

The entity decoder runs N_Q subject and N_Q object queries side by side (the
first half subjects, the second half objects); after every layer the box
heads refine each query's reference box (iterative refinement, detached as in
Deformable DETR). The relation decoder then runs N_Q relation queries whose
reference box is the mean of their pair's subject and object boxes.

With ``dab=True`` (ParSeDA) the query position embedding is not learned per
query but computed from the current 4-d anchor box (DAB-DETR): a sine
embedding through ``ref_point_head``, scaled by ``query_scale(content)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .box_ops import inverse_sigmoid
from .deformable import MSDeformAttn
from .heads import MLP
from .position import box_sine_embedding


class DeformableDecoderLayer(nn.Module):
    """Post-norm self-attention, deformable cross-attention and FFN."""

    def __init__(self, d_model: int, d_ffn: int, dropout: float, n_levels: int, n_heads: int, n_points: int) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.cross_attn = MSDeformAttn(d_model, n_levels, n_heads, n_points)
        self.dropout1 = nn.Dropout(dropout)
        self.norm1 = nn.LayerNorm(d_model)
        self.self_attn = nn.MultiheadAttention(d_model, n_heads, dropout=dropout, batch_first=True)
        self.dropout2 = nn.Dropout(dropout)
        self.norm2 = nn.LayerNorm(d_model)
        self.linear1 = nn.Linear(d_model, d_ffn)
        self.dropout3 = nn.Dropout(dropout)
        self.linear2 = nn.Linear(d_ffn, d_model)
        self.dropout4 = nn.Dropout(dropout)
        self.norm3 = nn.LayerNorm(d_model)

    def forward(self, tgt: Tensor, query_pos: Tensor | None, reference_points: Tensor, memory: Tensor,
                spatial_shapes: Tensor, level_start_index: Tensor, memory_pad: Tensor,
                key_padding_mask: Tensor | None = None, attn_mask: Tensor | None = None) -> Tensor:
        q = k = tgt if query_pos is None else tgt + query_pos
        if attn_mask is not None:
            # (B, Q, Q) -> (B * heads, Q, Q), the layout nn.MultiheadAttention expects.
            attn_mask = attn_mask.repeat_interleave(self.n_heads, dim=0)
        attended = self.self_attn(q, k, tgt, key_padding_mask=key_padding_mask, attn_mask=attn_mask,
                                  need_weights=False)[0]
        tgt = self.norm2(tgt + self.dropout2(attended))
        query = tgt if query_pos is None else tgt + query_pos
        attended = self.cross_attn(query, reference_points, memory, spatial_shapes, level_start_index, memory_pad)
        tgt = self.norm1(tgt + self.dropout1(attended))
        ffn = self.linear2(self.dropout3(F.relu(self.linear1(tgt))))
        return self.norm3(tgt + self.dropout4(ffn))


@dataclass
class Memory:
    """What the decoders read from the encoder."""

    memory: Tensor  # (B, S, C)
    pad_mask: Tensor  # (B, S)
    spatial_shapes: Tensor  # (L, 2)
    level_start_index: Tensor  # (L,)
    valid_ratios: Tensor  # (B, L, 2)


def _scale_reference(ref: Tensor, valid_ratios: Tensor) -> Tensor:
    """(B, Q, 2|4) normalised boxes -> (B, Q, L, 2|4) per-level sampling references."""
    ratios = valid_ratios if ref.shape[-1] == 2 else torch.cat([valid_ratios, valid_ratios], -1)
    return ref[:, :, None] * ratios[:, None]


def _refine(head: nn.Module, hidden: Tensor, ref: Tensor) -> Tensor:
    delta = head(hidden)
    if ref.shape[-1] == 4:
        return (delta + inverse_sigmoid(ref)).sigmoid()
    xy = delta[..., :2] + inverse_sigmoid(ref)
    return torch.cat((xy, delta[..., 2:]), dim=-1).sigmoid()


class PairDecoder(nn.Module):
    """A stack of decoder layers over either parallel (subject|object) or relation queries."""

    def __init__(self, layer_factory: Callable[[], DeformableDecoderLayer], num_layers: int, parallel: bool,
                 dab: bool, d_model: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layer_factory() for _ in range(num_layers))
        self.parallel = parallel
        self.dab = dab
        self.d_model = d_model
        if dab:
            self.query_scale = MLP(d_model, d_model, d_model, 2)
            self.ref_point_head = MLP(2 * d_model, d_model, d_model, 2)

    def forward(self, tgt: Tensor, sub_ref: Tensor, obj_ref: Tensor, mem: Memory, query_pos: Tensor | None,
                sub_heads: nn.ModuleList, obj_heads: nn.ModuleList, key_padding_mask: Tensor | None = None,
                attn_mask: Tensor | None = None) -> tuple[Tensor, list[tuple[Tensor, Tensor]]]:
        """Returns hidden states (num_layers, B, Q, C) and the refined (sub, obj) boxes after each layer."""
        num_pairs = sub_ref.shape[1]
        hidden = tgt
        states: list[Tensor] = []
        refs: list[tuple[Tensor, Tensor]] = []
        for index, layer in enumerate(self.layers):
            if self.parallel:
                ref_input = torch.cat((_scale_reference(sub_ref, mem.valid_ratios),
                                       _scale_reference(obj_ref, mem.valid_ratios)), dim=1)
            else:
                ref_input = _scale_reference(0.5 * (sub_ref + obj_ref), mem.valid_ratios)
            if self.dab:
                raw_pos = self.ref_point_head(box_sine_embedding(ref_input[:, :, 0, :], self.d_model))
                query_pos = raw_pos if index == 0 else self.query_scale(hidden) * raw_pos
            hidden = layer(hidden, query_pos, ref_input, mem.memory, mem.spatial_shapes, mem.level_start_index,
                           mem.pad_mask, key_padding_mask=key_padding_mask, attn_mask=attn_mask)
            sub_hidden = hidden[:, :num_pairs] if self.parallel else hidden
            obj_hidden = hidden[:, num_pairs:] if self.parallel else hidden
            sub_ref = _refine(sub_heads[index], sub_hidden, sub_ref).detach()
            obj_ref = _refine(obj_heads[index], obj_hidden, obj_ref).detach()
            states.append(hidden)
            refs.append((sub_ref, obj_ref))
        return torch.stack(states), refs
