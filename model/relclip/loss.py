"""Relational contrastive loss (RCL) with decoupled pairs and per-query negative dictionaries.

A relation ⟨s, r, o⟩ is scored against text at one of three granularities:

* ``dual`` (RelCLIP): the triplet is decoupled into a subject-predicate pair
  ("man riding") and a predicate-object pair ("riding horse"); the relation
  has one visual embedding per pair and each is contrasted with the texts of
  its pair for every candidate predicate. The loss is the sum of the two
  levels' contrastive losses, and the predicate score at inference is the sum
  of the two levels' logits;
* ``triple``: one visual embedding against "man riding horse";
* ``unary``: one visual embedding against the bare predicate "riding".

For a query q with positive predicate p, the contrastive term is InfoNCE with
weighted negatives taken from p's negative dictionary N(p)
(:mod:`model.relclip.sampling`)::

    L_q = -log( e^{l_qp} / (e^{l_qp} + Σ_{j ∈ N(p)} w_pj e^{l_qj}) ),   l_qj = cos(v_q, t_qj) / τ

Synonyms of p are simply absent from N(p), so they neither help nor hurt.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from model.relclip.sampling import NegativeDictionary

ContrastMode = Literal["dual", "triple", "unary"]
CONTRAST_MODES: tuple[str, ...] = ("dual", "triple", "unary")
DEFAULT_TEMPERATURE = 0.07  # CLIP's initial temperature


def cosine_logits(visual: Tensor, texts: Tensor, temperature: float | Tensor) -> Tensor:
    """``(Q, R)`` scaled cosine similarities of ``visual`` (Q, D) with per-query texts (Q, R, D) or shared (R, D)."""
    v = F.normalize(visual, dim=-1)
    t = F.normalize(texts, dim=-1)
    sims = v @ t.t() if t.ndim == 2 else torch.einsum("qd,qrd->qr", v, t)
    return sims / temperature


def weighted_info_nce(logits: Tensor, positives: Tensor, dictionary: NegativeDictionary,
                      also_true: Tensor | None = None) -> Tensor:
    """Per-query loss ``(Q,)``: the positive's logit against its dictionary's weighted negatives.

    ``also_true`` (Q, R) marks other predicates that hold for the same pair
    (a person both holds and cuts with a knife): they are not negatives.
    """
    if logits.shape[1] != dictionary.num_predicates:
        raise ValueError(f"logits cover {logits.shape[1]} predicates, the dictionary {dictionary.num_predicates}")
    mask = dictionary.mask.to(logits.device)[positives]
    if also_true is not None:
        mask = mask & ~also_true.to(device=logits.device, dtype=torch.bool)
    weights = dictionary.weights.to(device=logits.device, dtype=logits.dtype)[positives]
    positive = logits.gather(1, positives[:, None])
    # log(Σ w e^l) as a logsumexp of l + log w: stable for large logits, and a
    # zero weight or a non-negative (mask False) contributes exactly nothing.
    negatives = torch.where(mask & (weights > 0), logits + weights.clamp(min=1e-30).log(),
                            torch.full_like(logits, -float("inf")))
    return torch.logsumexp(torch.cat([positive, negatives], dim=1), dim=1) - positive.squeeze(1)


class RelationalContrastiveLoss(nn.Module):
    """RCL over a predicate vocabulary; see the module docstring.

    ``forward(visual, texts, predicates)``: for ``dual`` mode ``visual`` and
    ``texts`` are ``(subject-predicate, predicate-object)`` tuples; otherwise
    single tensors. ``visual`` is ``(Q, D)``, ``texts`` ``(Q, R, D)`` (the
    candidate texts of each query, e.g. "man riding" … "man on") or ``(R, D)``
    when shared by all queries. ``predicates`` ``(Q,)`` are the positives;
    ``also_true`` ``(Q, R)`` optionally marks the pair's other true predicates.
    """

    def __init__(self, dictionary: NegativeDictionary, mode: ContrastMode = "dual",
                 temperature: float = DEFAULT_TEMPERATURE) -> None:
        super().__init__()
        if mode not in CONTRAST_MODES:
            raise ValueError(f"unknown contrast mode {mode!r}; known: {', '.join(CONTRAST_MODES)}")
        if temperature <= 0:
            raise ValueError("temperature must be positive")
        self.dictionary = dictionary
        self.mode = mode
        self.temperature = temperature

    def logits(self, visual: Tensor | tuple[Tensor, Tensor], texts: Tensor | tuple[Tensor, Tensor]
               ) -> list[Tensor]:
        """One ``(Q, R)`` logit matrix per contrast level (two for ``dual``)."""
        if self.mode == "dual":
            if not (isinstance(visual, tuple) and isinstance(texts, tuple)):
                raise TypeError("dual contrast takes (subject-predicate, predicate-object) tuples")
            return [cosine_logits(v, t, self.temperature) for v, t in zip(visual, texts)]
        if isinstance(visual, tuple) or isinstance(texts, tuple):
            raise TypeError(f"{self.mode} contrast takes single tensors")
        return [cosine_logits(visual, texts, self.temperature)]

    def predicate_scores(self, visual: Tensor | tuple[Tensor, Tensor],
                         texts: Tensor | tuple[Tensor, Tensor]) -> Tensor:
        """``(Q, R)`` predicate scores for inference: the levels' logits summed."""
        return torch.stack(self.logits(visual, texts)).sum(0)

    def forward(self, visual: Tensor | tuple[Tensor, Tensor], texts: Tensor | tuple[Tensor, Tensor],
                predicates: Tensor, also_true: Tensor | None = None) -> Tensor:
        levels = self.logits(visual, texts)
        if predicates.numel() == 0:
            return levels[0].sum() * 0.0  # keeps the graph for an empty batch
        per_query = sum(weighted_info_nce(level, predicates, self.dictionary, also_true) for level in levels)
        return per_query.mean()
