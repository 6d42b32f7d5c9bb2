"""Model outputs to scored triplets, and triplet recall against ground truth.

Two post-processing protocols, named:

* ``qpic`` (the benchmark protocol of QPIC and RLIPv2 for HICO-DET/V-COCO, and
  the default of ``relfactory evaluate`` there): every query is one
  (person, object) pair. The subject is *fixed* to the person label, the
  object takes its most probable entity text (no-object excluded) and each
  relation text j gets ``sigmoid(verb_j) x p(object)``: the subject's
  probability plays no part. :func:`pair_predictions` gives this per-query
  form (:class:`PairPredictions`, QPIC's ``PostProcessHOI`` output), and
  :meth:`~PairPredictions.triplets` then drops the (object, verb) pairs the
  benchmark does not define (HICO-DET's 600 classes: QPIC's ``correct_mat``)
  *before* keeping the ``top_k`` (100) best of the image.
* ``all-entities`` (relfactory's own, for open-vocabulary relation data where
  subjects are not always people): subject and object each take their most
  probable entity text, a triplet scores ``verb x subject x object``, and the
  image keeps its ``top_k`` triplets over all relation texts.

Boxes come back as x1, y1, x2, y2 pixels of the size given per image.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Sequence

import numpy as np
import torch
from torch import Tensor

from model.box_ops import box_cxcywh_to_xyxy

from .records import Record

Protocol = Literal["qpic", "all-entities"]
PROTOCOLS: tuple[str, ...] = ("qpic", "all-entities")


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


@dataclass
class PairPredictions:
    """One image in QPIC's per-query form: ``boxes``/``labels`` hold the Q subjects then the Q objects.

    ``verb_scores[q, j]`` scores relation text j for pair q = (``sub_ids[q]``,
    ``obj_ids[q]``), indices into ``boxes``. Labels and verb columns index the
    label space the model was run with.
    """

    boxes: np.ndarray  # (2Q, 4) pixels
    labels: np.ndarray  # (2Q,)
    verb_scores: np.ndarray  # (Q, R)
    sub_ids: np.ndarray  # (Q,)
    obj_ids: np.ndarray  # (Q,)

    def __post_init__(self) -> None:
        self.boxes = np.asarray(self.boxes, dtype=np.float64).reshape(-1, 4)
        self.labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
        self.sub_ids = np.asarray(self.sub_ids, dtype=np.int64).reshape(-1)
        self.obj_ids = np.asarray(self.obj_ids, dtype=np.int64).reshape(-1)
        self.verb_scores = np.asarray(self.verb_scores, dtype=np.float64).reshape(len(self.sub_ids), -1)
        if len(self.obj_ids) != len(self.sub_ids):
            raise ValueError(f"{len(self.sub_ids)} sub_ids but {len(self.obj_ids)} obj_ids")
        if len(self.labels) != len(self.boxes):
            raise ValueError(f"{len(self.boxes)} boxes but {len(self.labels)} labels")
        ids = np.concatenate((self.sub_ids, self.obj_ids))
        if len(ids) and (ids.min() < 0 or ids.max() >= len(self.boxes)):
            raise ValueError("sub_ids/obj_ids point outside boxes")

    def triplets(self, defined: np.ndarray | None = None, top_k: int | None = 100) -> PredictedTriplets:
        """Every (pair, relation) as a triplet; undefined (object, relation) pairs dropped, then the best ``top_k``.

        ``defined[e, j]`` is True where object label e with relation j is a
        class of the benchmark (None: all are). Ties keep query-major order,
        as QPIC's stable sort over the flattened scores does.
        """
        num_pairs, width = self.verb_scores.shape
        scores = self.verb_scores.reshape(-1)
        pair = np.repeat(np.arange(num_pairs), width)
        verb = np.tile(np.arange(width), num_pairs)
        object_labels = self.labels[self.obj_ids][pair]
        order = np.argsort(-scores, kind="stable")
        if defined is not None:
            keep = np.zeros(len(scores), dtype=bool)
            known = (object_labels >= 0) & (object_labels < defined.shape[0]) & (verb < defined.shape[1])
            keep[known] = defined[object_labels[known], verb[known]]
            order = order[keep[order]]
        if top_k is not None:
            order = order[:top_k]
        sub, obj = self.sub_ids[pair[order]], self.obj_ids[pair[order]]
        return PredictedTriplets(self.boxes[sub], self.boxes[obj], self.labels[sub], self.labels[obj], verb[order],
                                 scores[order])


def _entity_probabilities(outputs: dict[str, Any], role: str) -> Tensor:
    """Softmax over the entity texts (no-object included, as trained), then no-object and padding zeroed."""
    prob = outputs[f"pred_{role}_logits"].float().softmax(-1)
    rows = torch.arange(prob.shape[0], device=prob.device)
    # The no-object token is not an answer: the best real entity text is.
    prob[rows, :, outputs["no_object_index"].to(prob.device)] = 0
    return prob.masked_fill(outputs["entity_pad_mask"][:, None, :], 0)


def _pixel_boxes(outputs: dict[str, Any], role: str, size: tuple[int, int], b: int) -> Tensor:
    width, height = size
    boxes = box_cxcywh_to_xyxy(outputs[f"pred_{role}_boxes"][b].float())
    return boxes * torch.tensor([width, height, width, height], dtype=torch.float32, device=boxes.device)


@torch.no_grad()
def pair_predictions(outputs: dict[str, Any], sizes: Sequence[tuple[int, int]], protocol: Protocol = "qpic",
                     subject_label: int | None = None) -> list[PairPredictions]:
    """Per image, every query as a scored pair (QPIC's ``PostProcessHOI`` form).

    ``qpic``: subject label fixed to ``subject_label``, ``verb_scores =
    sigmoid(verb) x p(object)``. ``all-entities``: the subject's best text
    too, ``verb_scores = sigmoid(verb) x p(subject) x p(object)``.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; choose from {PROTOCOLS}")
    if protocol == "qpic" and subject_label is None:
        raise ValueError("the qpic protocol fixes the subject: give subject_label (the person's entity index)")
    obj_score, obj_label = _entity_probabilities(outputs, "obj").max(-1)
    verb = outputs["pred_verb_logits"].float().sigmoid().masked_fill(outputs["relation_pad_mask"][:, None, :], 0)
    if protocol == "qpic":
        sub_label = torch.full_like(obj_label, int(subject_label))  # type: ignore[arg-type]
        verb_scores = verb * obj_score[..., None]
    else:
        sub_score, sub_label = _entity_probabilities(outputs, "sub").max(-1)
        verb_scores = verb * (sub_score * obj_score)[..., None]
    results = []
    for b, size in enumerate(sizes):
        queries = obj_label.shape[1]
        boxes = torch.cat((_pixel_boxes(outputs, "sub", size, b), _pixel_boxes(outputs, "obj", size, b)))
        labels = torch.cat((sub_label[b], obj_label[b]))
        results.append(PairPredictions(boxes.cpu().numpy(), labels.cpu().numpy(), verb_scores[b].cpu().numpy(),
                                       np.arange(queries), np.arange(queries, 2 * queries)))
    return results


def postprocess(outputs: dict[str, Any], sizes: Sequence[tuple[int, int]], top_k: int | None = 100, *,
                protocol: Protocol = "qpic", subject_label: int | None = None,
                defined: np.ndarray | None = None) -> list[PredictedTriplets]:
    """Each image's best ``top_k`` triplets; ``sizes`` are (width, height), the frame of the pixel boxes.

    ``qpic`` needs ``subject_label`` (the person's entity index) and drops
    the pairs ``defined`` (entity x relation, True = a benchmark class) leaves
    out *before* the cut; ``all-entities`` cuts over every relation text.
    """
    pairs = pair_predictions(outputs, sizes, protocol, subject_label)
    return [p.triplets(defined if protocol == "qpic" else None, top_k) for p in pairs]


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
