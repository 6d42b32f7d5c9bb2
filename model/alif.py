"""Asymmetric Language-Image Fusion: gated bidirectional cross-attention (GLIP style).

One fusion block lets vision tokens attend to language tokens and language
tokens attend to vision tokens in a single multi-head attention (shared
logits, two softmaxes), then adds each update through a gate ``G``:

* ``scalar``: ``G(x) = a x`` with a learnable scalar ``a`` (paper default, official ``VXAc``)
* ``vector``: ``G(x) = a * x`` per channel (official ``GLIP``)
* ``se``: ``G(x) = SE(x) * x``, squeeze-and-excitation on the update (official ``SDFXAc``)
* ``none``: ``G(x) = x``

``gate_tanh`` wraps the gate in ``tanh`` (official ``Vtanh``/``Etanh``/``SDFtanh``).
Gates start at 0.25 as in the official code (``1 / num_feature_levels``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# Additive mask value the official fusion uses; large but finite in fp32.
_FUSION_MASK = -9e15


class Gate(nn.Module):
    def __init__(self, kind: str, dim: int, init: float, tanh: bool, se_reduction: int = 4) -> None:
        super().__init__()
        self.kind, self.tanh = kind, tanh
        if kind == "scalar":
            self.alpha = nn.Parameter(torch.full((1,), float(init)))
        elif kind == "vector":
            self.alpha = nn.Parameter(torch.full((dim,), float(init)))
        elif kind == "se":
            self.down = nn.Linear(dim, dim // se_reduction)
            self.up = nn.Linear(dim // se_reduction, dim)
        elif kind != "none":
            raise ValueError(f"unknown gate {kind!r}")

    def forward(self, update: Tensor) -> Tensor:
        if self.kind == "none":
            return update
        weight = self.up(F.relu(self.down(update))) if self.kind == "se" else self.alpha
        if self.tanh:
            weight = torch.tanh(weight)
        return weight * update


class BiMultiHeadAttention(nn.Module):
    """Vision<->language attention sharing one set of attention logits."""

    def __init__(self, v_dim: int, l_dim: int, embed_dim: int, num_heads: int, dropout: float) -> None:
        super().__init__()
        self.num_heads, self.head_dim = num_heads, embed_dim // num_heads
        self.scale = self.head_dim**-0.5
        self.dropout = dropout
        self.v_proj = nn.Linear(v_dim, embed_dim)
        self.l_proj = nn.Linear(l_dim, embed_dim)
        self.values_v_proj = nn.Linear(v_dim, embed_dim)
        self.values_l_proj = nn.Linear(l_dim, embed_dim)
        self.out_v_proj = nn.Linear(embed_dim, v_dim)
        self.out_l_proj = nn.Linear(embed_dim, l_dim)
        for linear in (self.v_proj, self.l_proj, self.values_v_proj, self.values_l_proj, self.out_v_proj,
                       self.out_l_proj):
            nn.init.xavier_uniform_(linear.weight)
            nn.init.zeros_(linear.bias)

    def _heads(self, x: Tensor) -> Tensor:
        b, n, _ = x.shape
        return x.view(b, n, self.num_heads, self.head_dim).transpose(1, 2)  # (B, h, N, d)

    def forward(self, v: Tensor, lang: Tensor, v_pos: Tensor | None, v_pad: Tensor, l_pad: Tensor) -> tuple[Tensor, Tensor]:
        """v (B, Nv, Cv), lang (B, Nl, Cl); ``*_pad`` True on padding. Returns the two updates."""
        query = self._heads(self.v_proj(v if v_pos is None else v + v_pos) * self.scale)
        key = self._heads(self.l_proj(lang))
        value_v = self._heads(self.values_v_proj(v))
        value_l = self._heads(self.values_l_proj(lang))
        logits = query @ key.transpose(-1, -2)  # (B, h, Nv, Nl)

        logits_l = logits.transpose(-1, -2)
        logits_l = logits_l - logits_l.max(dim=-1, keepdim=True)[0]
        logits_l = logits_l.masked_fill(v_pad[:, None, None, :], _FUSION_MASK)
        logits_v = logits.masked_fill(l_pad[:, None, None, :], _FUSION_MASK)

        probs_v = F.dropout(logits_v.softmax(-1), p=self.dropout, training=self.training)
        probs_l = F.dropout(logits_l.softmax(-1), p=self.dropout, training=self.training)
        out_v = (probs_v @ value_l).transpose(1, 2).flatten(2)
        out_l = (probs_l @ value_v).transpose(1, 2).flatten(2)
        return self.out_v_proj(out_v), self.out_l_proj(out_l)


class FusionBlock(nn.Module):
    """Pre-norm bidirectional attention with gated residual updates."""

    def __init__(self, v_dim: int, l_dim: int, embed_dim: int, num_heads: int, dropout: float, gate: str,
                 gate_init: float, gate_tanh: bool, se_reduction: int) -> None:
        super().__init__()
        self.layer_norm_v = nn.LayerNorm(v_dim)
        self.layer_norm_l = nn.LayerNorm(l_dim)
        self.attn = BiMultiHeadAttention(v_dim, l_dim, embed_dim, num_heads, dropout)
        self.gate_v = Gate(gate, v_dim, gate_init, gate_tanh, se_reduction)
        self.gate_l = Gate(gate, l_dim, gate_init, gate_tanh, se_reduction)

    def forward(self, v: Tensor, lang: Tensor, v_pos: Tensor | None, v_pad: Tensor, l_pad: Tensor) -> tuple[Tensor, Tensor]:
        # As in the official block the residual starts from the *normalised*
        # inputs: the block's outputs replace the raw tokens.
        v = self.layer_norm_v(v)
        lang = self.layer_norm_l(lang)
        delta_v, delta_l = self.attn(v, lang, v_pos, v_pad, l_pad)
        return v + self.gate_v(delta_v), lang + self.gate_l(delta_l)
