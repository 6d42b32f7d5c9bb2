"""The ``clip`` backend: the CLIP tagging baseline of RLIPv2 (Tab. 5).

No relation-specific training: for each candidate pair, CLIP looks at the
crop of the pair's union box and compares two prompts,
"a photo of {subject} {relation} {object}" and "a photo of {subject} and
{object}". The softmax of the two (with CLIP's own logit scale) is the
confidence that the relation holds; the stage keeps it above η, and the
pair-assignment benchmark sweeps that threshold.

Every relation text of the image is tried on every candidate pair, as the
R-Tagger does. With ``tag.require_overlap`` (the overlap prior) only pairs
whose boxes overlap are scored at all.

The model is ``tag.clip_model`` (default ``openai/clip-vit-base-patch32``: a
hub id in the local Hugging Face cache, or a directory from
``save_pretrained``), loaded once per process, on ``tag.device``.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from PIL import Image

from model.relclip.clip_encoder import DEFAULT_CLIP_MODEL, ClipEncoder, crop, load_clip, union_box, xywh_to_xyxy
from pipeline.config import TagConfig
from pipeline.contracts import ErrorRow, Row
from pipeline.images import BadImage, load_image
from stages.taggers.base import ScoredRelation, Tagger, TaggerResult, boxes_by_id
from stages.taggers.geometry import box_iou

RELATION_PROMPT = "a photo of {subject} {relation} {object}"
PAIR_PROMPT = "a photo of {subject} and {object}"


def relation_probability(encoder: ClipEncoder, crops: torch.Tensor, relation_texts: list[str],
                         pair_texts: list[str]) -> torch.Tensor:
    """P(relation prompt) of a two-way softmax against the plain pair prompt, per crop (row-aligned lists)."""
    rel = encoder.encode_texts(relation_texts)
    plain = encoder.encode_texts(pair_texts)
    margin = encoder.logit_scale * ((crops * rel).sum(-1) - (crops * plain).sum(-1))
    return torch.sigmoid(margin)  # softmax over {relation, plain} = sigmoid of the logit difference


class ClipTagger(Tagger):
    name = "clip"
    needs_pixels = True

    def __init__(self, tag_cfg: TagConfig) -> None:
        self.model_id = str(getattr(tag_cfg, "clip_model", None) or DEFAULT_CLIP_MODEL)
        self.device = tag_cfg.device
        self.require_overlap = tag_cfg.require_overlap

    def tag(self, chunks: list[Row], images: dict[int, Row], image_root: Path) -> TaggerResult:
        encoder = load_clip(self.model_id, self.device)
        result = TaggerResult()
        grouped: dict[int, list[Row]] = {}
        for chunk in chunks:
            grouped.setdefault(chunk["image_id"], []).append(chunk)
        for image_id, image_chunks in grouped.items():
            row = images[image_id]
            objects = boxes_by_id(row)
            pairs = _unique_pairs(image_chunks)
            unknown = [p for p in pairs if p[0] not in objects or p[1] not in objects]
            if unknown:
                result.errors.append(ErrorRow(image_id, "tag", "unknown_object",
                                              f"pair {unknown[0]} names a box not among the image's objects"))
                continue
            if self.require_overlap:
                pairs = [p for p in pairs if box_iou(objects[p[0]], objects[p[1]]) > 0.0]
            texts = sorted({text for chunk in image_chunks for text in chunk["relation_texts"]})
            if not pairs or not texts:
                continue
            try:
                pixels = load_image(image_root, row["file_name"])
            except BadImage as exc:
                result.errors.append(ErrorRow(image_id, "tag", exc.reason, exc.detail))
                continue
            result.scores.extend(self._score_image(encoder, image_id, pixels, objects, pairs, texts))
        return result

    def _score_image(self, encoder: ClipEncoder, image_id: int, pixels: Image.Image, objects: dict[int, Row],
                     pairs: list[tuple[int, int]], texts: list[str]) -> list[ScoredRelation]:
        crops = encoder.encode_images([
            crop(pixels, union_box(xywh_to_xyxy(objects[s]), xywh_to_xyxy(objects[o]))) for s, o in pairs])
        relation_texts, pair_texts, index = [], [], []
        for p, (s, o) in enumerate(pairs):
            subject, obj = str(objects[s]["category"]), str(objects[o]["category"])
            for text in texts:
                relation_texts.append(RELATION_PROMPT.format(subject=subject, relation=text, object=obj))
                pair_texts.append(PAIR_PROMPT.format(subject=subject, object=obj))
                index.append((p, text))
        row_crops = crops[torch.tensor([p for p, _ in index], dtype=torch.long)]
        probabilities = relation_probability(encoder, row_crops, relation_texts, pair_texts).tolist()
        return [
            ScoredRelation(image_id, pairs[p][0], pairs[p][1], text, _finite(prob))
            for (p, text), prob in zip(index, probabilities)
        ]


def _finite(value: float) -> float:
    return float(value) if math.isfinite(value) else 0.0


def _unique_pairs(chunks: list[Row]) -> list[tuple[int, int]]:
    seen: dict[tuple[int, int], None] = {}
    for chunk in chunks:
        for pair in chunk["pairs"]:
            seen.setdefault((int(pair["subject_id"]), int(pair["object_id"])), None)
    return list(seen)
