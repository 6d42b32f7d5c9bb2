"""R-Tagger inference: images with given pairs and relation texts to relation confidences.

Efficiency, against the official script (which re-encoded a repeated image
tensor for every chunk of pairs):

* each image is encoded once (backbone, ALIF, text) and the encoder output is
  re-indexed for all of its chunks (``reuse_encoder=True``);
* several images of the same size share one encoder pass (``images_per_pass``)
  and chunks of all of them share decoder passes (``chunks_per_pass``);
* label phrases are pooled once and cached.

A pair's score depends on the other pairs in its chunk (queries attend to each
other) and on its slot, as in the official tagger; chunks are formed in input
order, so results are deterministic for a given input.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Hashable, Literal, Sequence

import torch
from torch import Tensor

from .base import EncodedBatch
from .rtagger import RTagger
from .text_encoder import LabelBatch, pack_labels

ConfidenceMode = Literal["paper", "relation-only"]


@dataclass
class TaggingImage:
    """One image's tagging request. Boxes are normalised (cx, cy, w, h)."""

    key: Hashable
    pixels: Tensor  # (3, H, W), see model.preprocess
    entity_labels: list[str]  # the class vocabulary (no-object token is added by the model)
    relation_texts: list[str]
    sub_boxes: Tensor  # (P, 4)
    obj_boxes: Tensor  # (P, 4)
    sub_labels: Tensor  # (P,) indices into entity_labels
    obj_labels: Tensor

    @property
    def num_pairs(self) -> int:
        return int(self.sub_boxes.shape[0])


def relation_confidence(outputs: dict[str, Tensor], mode: ConfidenceMode = "paper") -> Tensor:
    """(B, N, R) confidence of every relation text for every pair slot.

    ``paper``: top-1 subject probability x top-1 object probability x relation
    sigmoid (RLIPv2, Sec. 3); the top-1 is taken over real classes, the
    no-object token excluded. ``relation-only``: the relation sigmoid alone, as
    the official tagging script computes it.
    """
    relation = outputs["pred_verb_logits"].float().sigmoid()
    if mode == "relation-only":
        return relation
    if mode != "paper":
        raise ValueError(f"unknown confidence mode {mode!r}")
    no_object = outputs["no_object_index"].long()

    def top1(logits: Tensor) -> Tensor:
        probs = logits.float().softmax(-1)
        index = no_object[:, None, None].expand(-1, probs.shape[1], 1)
        return probs.scatter(-1, index, 0.0).max(-1).values

    return top1(outputs["pred_sub_logits"])[..., None] * top1(outputs["pred_obj_logits"])[..., None] * relation


@dataclass
class _Chunk:
    image: int  # index into the current image batch
    start: int
    stop: int


class RTaggerPredictor:
    def __init__(self, model: RTagger, confidence: ConfidenceMode = "paper", images_per_pass: int = 4,
                 chunks_per_pass: int = 16, reuse_encoder: bool = True, phrase_cache_size: int = 50_000) -> None:
        if not isinstance(model, RTagger):
            raise TypeError(f"expected an RTagger, got {type(model).__name__}")
        self.model = model.eval()
        self.confidence = confidence
        self.images_per_pass = max(1, images_per_pass)
        self.chunks_per_pass = max(1, chunks_per_pass)
        self.reuse_encoder = reuse_encoder
        self._phrases: OrderedDict[str, Tensor] = OrderedDict()
        self._phrase_cache_size = phrase_cache_size

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.inference_mode()
    def predict(self, images: Sequence[TaggingImage]) -> list[Tensor]:
        """Per image, a (P, R) CPU tensor of confidences in the order of its pairs and relation texts."""
        results: list[Tensor] = [torch.zeros((img.num_pairs, len(img.relation_texts))) for img in images]
        for indices in self._encoder_batches(images):
            batch = [images[i] for i in indices]
            chunks = self._chunks(batch)
            if not chunks:
                continue
            labels = self._labels(batch)
            pixels = [img.pixels.to(self.device) for img in batch]
            encoded = self.model.encode(pixels, labels) if self.reuse_encoder else None
            for g in range(0, len(chunks), self.chunks_per_pass):
                group = chunks[g : g + self.chunks_per_pass]
                rows = torch.as_tensor([c.image for c in group], device=self.device)
                enc: EncodedBatch = (encoded.index_select(rows) if encoded is not None
                                     else self.model.encode([pixels[c.image] for c in group], labels.index_select(rows)))
                outputs = self.model.decode(enc, [self._targets(batch[c.image], c) for c in group])
                scores = relation_confidence(outputs, self.confidence).cpu()
                for k, chunk in enumerate(group):
                    image = batch[chunk.image]
                    count = chunk.stop - chunk.start
                    results[indices[chunk.image]][chunk.start : chunk.stop] = scores[k, :count, : len(image.relation_texts)]
        return results

    def _encoder_batches(self, images: Sequence[TaggingImage]) -> list[list[int]]:
        """Up to ``images_per_pass`` consecutive images of the *same* size per encoder pass.

        Images of different sizes are never padded together, so an image's
        scores do not depend on which other images share its pass (the tag
        stage's batch size is a speed setting, not an output setting).
        """
        batches: list[list[int]] = []
        for first in range(0, len(images), self.images_per_pass):
            by_shape: dict[tuple[int, ...], list[int]] = {}
            for i in range(first, min(first + self.images_per_pass, len(images))):
                by_shape.setdefault(tuple(images[i].pixels.shape), []).append(i)
            batches.extend(by_shape.values())
        return batches

    # ---------------------------------------------------------------- helpers
    def _chunks(self, batch: list[TaggingImage]) -> list[_Chunk]:
        size = self.model.num_queries
        return [_Chunk(i, s, min(s + size, img.num_pairs))
                for i, img in enumerate(batch) if img.relation_texts
                for s in range(0, img.num_pairs, size)]

    def _targets(self, image: TaggingImage, chunk: _Chunk) -> dict[str, Tensor]:
        part = slice(chunk.start, chunk.stop)
        return {
            "sub_boxes": image.sub_boxes[part].float().to(self.device),
            "obj_boxes": image.obj_boxes[part].float().to(self.device),
            "sub_labels": image.sub_labels[part].long().to(self.device),
            "obj_labels": image.obj_labels[part].long().to(self.device),
        }

    def _labels(self, batch: list[TaggingImage]) -> LabelBatch:
        no_object = self.model.config.no_object_text
        entity_groups = [list(img.entity_labels) + [no_object] for img in batch]
        relation_groups = [list(img.relation_texts) for img in batch]
        self._encode_missing({p for g in (*entity_groups, *relation_groups) for p in g})

        def stack(group: list[str]) -> Tensor:
            if not group:
                return torch.zeros((0, self.model.text_encoder.hidden_size), device=self.device)
            return torch.stack([self._phrases[p] for p in group])
        return pack_labels([stack(g) for g in entity_groups], [stack(g) for g in relation_groups])

    def _encode_missing(self, phrases: set[str]) -> None:
        for phrase in phrases & self._phrases.keys():
            self._phrases.move_to_end(phrase)
        missing = sorted(phrases - self._phrases.keys())
        if not missing:
            return
        # Phrases of equal token length are pooled together: no padding, so a
        # phrase's vector does not depend on which others share its batch.
        tokenizer = self.model.text_encoder.tokenizer
        by_length: dict[int, list[str]] = {}
        for phrase in missing:
            by_length.setdefault(len(tokenizer(phrase)["input_ids"]), []).append(phrase)
        for group in by_length.values():
            for start in range(0, len(group), 256):
                part = group[start : start + 256]
                for phrase, vector in zip(part, self.model.text_encoder(part)):
                    self._phrases[phrase] = vector
        while len(self._phrases) > self._phrase_cache_size:
            self._phrases.popitem(last=False)
