"""A guard against label texts that all encode to the same vector.

Entities and relations are classified by similarity to their texts' pooled
vectors. If the text encoder maps every phrase to (nearly) one vector — a
randomly initialised encoder read through its pooler or [CLS] token does,
cosine ~0.99998 — no label can be told from another until the encoder itself
learns otherwise, and training looks alive (the box losses fall) while the
classification losses sit at ln(#labels). This check catches that at model
build and at the start of training.
"""

from __future__ import annotations

import logging
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

log = logging.getLogger("relfactory.model")

# Phrases of both kinds a relational model must separate, for the build-time check.
PROBE_TEXTS: tuple[str, ...] = ("person", "dog", "cup", "traffic light", "on", "holding", "next to", "riding")
# Above this cosine two different texts are, for a classifier, the same label.
NEAR_IDENTICAL_COSINE = 0.999


@torch.no_grad()
def max_label_cosine(text_encoder: nn.Module, texts: Sequence[str]) -> float:
    """The largest cosine similarity between the pooled vectors of two distinct ``texts``."""
    distinct = list(dict.fromkeys(texts))
    if len(distinct) < 2:
        return float("nan")
    was_training = text_encoder.training
    text_encoder.eval()
    try:
        vectors = F.normalize(text_encoder(distinct).float(), dim=-1)
    finally:
        text_encoder.train(was_training)
    cosine = vectors @ vectors.t()
    cosine.fill_diagonal_(-1.0)
    return float(cosine.max())


def warn_if_labels_collapse(text_encoder: nn.Module, texts: Sequence[str] = PROBE_TEXTS, *,
                            where: str = "model build", threshold: float = NEAR_IDENTICAL_COSINE) -> float:
    """Log a warning when two distinct ``texts`` get near-identical vectors; returns the worst cosine."""
    worst = max_label_cosine(text_encoder, texts)
    if worst > threshold:
        pooling = getattr(text_encoder, "pooling", "?")
        log.warning(
            "%s: label texts are near-identical after the text encoder (max pairwise cosine %.5f > %.3f, "
            "pooling %r): entities and relations cannot be told apart, so classification will not learn. "
            "Use a pretrained text encoder or text_pooling='mean'.", where, worst, threshold, pooling)
    return worst


__all__ = ["NEAR_IDENTICAL_COSINE", "PROBE_TEXTS", "max_label_cosine", "warn_if_labels_collapse"]
