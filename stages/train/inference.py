"""Model outputs to scored triplets, and triplet recall against ground truth.

Post-processing follows QPIC/RLIP: per query, the subject and the object take
their most probable entity text (the no-object token excluded), each
relation text is scored by its sigmoid, and a triplet's score is
``relation x subject x object``; the ``top_k`` triplets of an image are
kept. Boxes come back as x1, y1, x2, y2 pixels of the size given per image.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from model.box_ops import box_cxcywh_to_xyxy

from .records import Record

@dataclass
class PredictedTriplets:
    """One image's triplets, best first; labels index the label sequence the model was given."""

    subject_boxes: np.ndarray  # (K, 4) pixels
    object_boxes: np.ndarray
    subject_labels: np.ndarray  # (K,) entity text index
    object_labels: np.ndarray
    predicates: np.ndarray  # (K,) relation text index
    scores: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)


@torch.no_grad()
def postprocess(outputs: dict[str, Any], sizes: Sequence[tuple[int, int]], top_k: int = 100) -> list[PredictedTriplets]:
    """``sizes`` are (width, height) per image, the frame the pixel boxes are reported in."""
    sub_prob = outputs["pred_sub_logits"].float().softmax(-1)
    obj_prob = outputs["pred_obj_logits"].float().softmax(-1)
    no_object = outputs["no_object_index"]
    batch = sub_prob.shape[0]
    rows = torch.arange(batch, device=sub_prob.device)
    # The no-object token is not an answer: take the best real entity text.
    sub_prob[rows, :, no_object] = 0
    obj_prob[rows, :, no_object] = 0
    sub_prob = sub_prob.masked_fill(outputs["entity_pad_mask"][:, None, :], 0)
    obj_prob = obj_prob.masked_fill(outputs["entity_pad_mask"][:, None, :], 0)
    sub_score, sub_label = sub_prob.max(-1)
    obj_score, obj_label = obj_prob.max(-1)
    verb = outputs["pred_verb_logits"].float().sigmoid().masked_fill(outputs["relation_pad_mask"][:, None, :], 0)
    scores = verb * (sub_score * obj_score)[..., None]  # (B, Q, R)
    sub_boxes = box_cxcywh_to_xyxy(outputs["pred_sub_boxes"].float())
    obj_boxes = box_cxcywh_to_xyxy(outputs["pred_obj_boxes"].float())
    results = []
    for b, (width, height) in enumerate(sizes):
        scale = torch.tensor([width, height, width, height], dtype=torch.float32, device=sub_boxes.device)
        flat = scores[b].reshape(-1)
        k = min(top_k, flat.numel())
        top, index = flat.topk(k)
        query, predicate = index // scores.shape[-1], index % scores.shape[-1]
        results.append(PredictedTriplets(
            subject_boxes=(sub_boxes[b, query] * scale).cpu().numpy().astype(np.float64),
            object_boxes=(obj_boxes[b, query] * scale).cpu().numpy().astype(np.float64),
            subject_labels=sub_label[b, query].cpu().numpy(),
            object_labels=obj_label[b, query].cpu().numpy(),
            predicates=predicate.cpu().numpy(),
            scores=top.cpu().numpy().astype(np.float64),
        ))
    return results


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of box ``a`` (4,) against rows of ``b`` (K, 4)."""
    x1, y1 = np.maximum(a[0], b[:, 0]), np.maximum(a[1], b[:, 1])
    x2, y2 = np.minimum(a[2], b[:, 2]), np.minimum(a[3], b[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) - inter
    return inter / np.maximum(union, 1e-9)


def triplet_recall(predictions: Sequence[PredictedTriplets], records: Sequence[Record],
                   entity_texts: Sequence[str], relation_texts: Sequence[str], iou: float = 0.5) -> tuple[int, int]:
    """(recovered, total) ground-truth triplets: same three texts and both boxes at IoU >= ``iou``.

    ``records`` hold the ground truth in the pixel frame of the predictions.
    """
    found = total = 0
    for pred, record in zip(predictions, records):
        boxes = np.asarray(record.boxes, dtype=np.float64).reshape(-1, 4)
        for rel in record.relations:
            total += 1
            same = ((np.asarray(entity_texts)[pred.subject_labels] == record.names[rel.subject])
                    & (np.asarray(relation_texts)[pred.predicates] == rel.predicate)
                    & (np.asarray(entity_texts)[pred.object_labels] == record.names[rel.object]))
            if not same.any():
                continue
            hit = ((_iou(boxes[rel.subject], pred.subject_boxes) >= iou)
                   & (_iou(boxes[rel.object], pred.object_boxes) >= iou))
            found += int((same & hit).any())
    return found, total
