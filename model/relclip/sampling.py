"""Semantic-aware negative sampling for relational contrastive learning (RelCLIP).

Contrasting a relation embedding against *every* other predicate treats
"on" as a negative of "sitting on" and "wears" as a negative of "wearing":
the loss then pushes apart texts that describe the same picture. RelCLIP
(Zhu et al.) instead builds, for each positive predicate, a dictionary of
negatives from word-embedding similarities between the predicate names:

* **synonym exclusion** — a predicate whose similarity to the positive is at
  least ``epsilon`` (0.7) is a synonym, never a negative;
* **informative sampling** — of the remaining predicates, the
  ``max_negatives`` most similar ones are kept (near-misses such as "riding"
  vs "sitting on" teach more than "riding" vs "made of"); ``None`` keeps all;
* **weighting** — each kept negative weighs its similarity, mapped to [0, 1]
  by ``(s + 1) / 2`` and normalised so that a query's negative weights average
  1 (an unweighted dictionary has all weights 1, so the loss scale is the same
  with and without weighting).

The paper's code was never released; this is our reading of its description.
Each of the three steps can be switched off for ablations.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

SYNONYM_EPSILON = 0.7


class TextEmbedder(Protocol):
    def __call__(self, texts: Sequence[str]) -> Tensor: ...


@dataclass(frozen=True)
class NegativeDictionary:
    """Negatives of each predicate: ``mask[i, j]`` says j is a negative when i is the positive.

    ``weights[i, j]`` is the weight of that negative (0 where ``mask`` is False).
    Both are ``(R, R)`` over the predicate vocabulary.
    """

    mask: Tensor
    weights: Tensor

    @property
    def num_predicates(self) -> int:
        return int(self.mask.shape[0])

    def negatives_of(self, predicate: int) -> list[int]:
        return torch.nonzero(self.mask[predicate]).flatten().tolist()

    @classmethod
    def uniform(cls, num_predicates: int) -> "NegativeDictionary":
        """Every other predicate a negative of weight 1: plain InfoNCE over the vocabulary."""
        mask = ~torch.eye(num_predicates, dtype=torch.bool)
        return cls(mask, mask.float())


def build_negative_dictionary(
    similarity: Tensor,
    epsilon: float = SYNONYM_EPSILON,
    max_negatives: int | None = None,
    exclude_synonyms: bool = True,
    weighted: bool = True,
) -> NegativeDictionary:
    """Per-predicate negatives from an ``(R, R)`` cosine-similarity matrix of predicate names."""
    if similarity.ndim != 2 or similarity.shape[0] != similarity.shape[1]:
        raise ValueError(f"similarity must be square (R, R), got {tuple(similarity.shape)}")
    sim = similarity.detach().float().cpu()
    count = sim.shape[0]
    mask = ~torch.eye(count, dtype=torch.bool)
    if exclude_synonyms:
        mask &= sim < epsilon
    if max_negatives is not None:
        if max_negatives < 1:
            raise ValueError("max_negatives must be at least 1 (or None for all)")
        # Most similar surviving candidates first; ties broken by index for determinism.
        ranked = torch.where(mask, sim, torch.full_like(sim, -float("inf")))
        order = torch.sort(ranked, dim=1, descending=True, stable=True).indices[:, :max_negatives]
        keep = torch.zeros_like(mask)
        keep.scatter_(1, order, True)
        mask &= keep
    if weighted:
        affinity = torch.where(mask, (sim.clamp(-1.0, 1.0) + 1.0) / 2.0, torch.zeros_like(sim))
        totals = affinity.sum(dim=1, keepdim=True)
        counts = mask.sum(dim=1, keepdim=True).float()
        weights = torch.where(totals > 0, affinity * counts / totals.clamp(min=1e-12), mask.float())
    else:
        weights = mask.float()
    return NegativeDictionary(mask, weights)


def predicate_similarity(predicates: Sequence[str], embedder: TextEmbedder | None = None) -> Tensor:
    """Cosine similarities of the predicate names under a word-embedding model (default: offline MiniLM)."""
    if embedder is None:
        from stages.train.labels import sentence_transformer_embedder

        embedder = sentence_transformer_embedder()
    vectors = torch.nn.functional.normalize(embedder(list(predicates)).float(), dim=-1)
    return vectors @ vectors.t()

