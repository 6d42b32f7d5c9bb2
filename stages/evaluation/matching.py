"""Greedy matching of ranked detections to ground truth, vectorised.

Every protocol here walks an image's detections in descending score order and,
for each one, picks the *best* ground-truth instance among those of the same
class — best overlap, first one on ties — *whether or not it is already
taken*. The detection is a true positive only if that best instance passes the
overlap threshold and no earlier detection took it; otherwise it is a false
positive (a duplicate detection of a taken instance included). This is the
rule of the official HICO-DET code (``VOCevaldet_bboxpair.m``), QPIC's
``compute_fptp``, V-COCO's ``vsrl_eval`` and the Open Images ``ap_eval``.

Because a detection never falls back to its second-best instance, the walk
collapses to: *a passing detection is a true positive iff it is the first
passing detection whose best instance is that instance* — which
``first_claims`` evaluates for a whole dataset at once.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from stages.evaluation.boxes import box_iou, union_boxes

PairMode = Literal["pair", "union"]


def first_claims(passed: np.ndarray, target: np.ndarray) -> np.ndarray:
    """True-positive flags for detections in processing order.

    ``passed[i]``: detection ``i``'s best ground-truth instance passes the
    threshold; ``target[i]``: a dataset-wide id of that instance (anything for
    detections that did not pass).
    """
    passed = np.asarray(passed, dtype=bool)
    tp = np.zeros(passed.shape, dtype=bool)
    candidates = np.flatnonzero(passed)
    if candidates.size:
        _, first = np.unique(np.asarray(target)[candidates], return_index=True)
        tp[candidates[first]] = True
    return tp


def best_relation_matches(
    pred_keys: np.ndarray,
    pred_subject_boxes: np.ndarray,
    pred_object_boxes: np.ndarray,
    gt_keys: np.ndarray,
    gt_subject_boxes: np.ndarray,
    gt_object_boxes: np.ndarray,
    mode: PairMode = "pair",
) -> tuple[np.ndarray, np.ndarray]:
    """Each prediction's best same-key ground-truth relation of one image.

    ``mode="pair"``: overlap is ``min(IoU(subjects), IoU(objects))`` (relation
    detection); ``mode="union"``: IoU of the boxes enclosing subject and object
    (phrase detection). Returns ``(overlap, index)``; a prediction with no
    same-key relation gets overlap ``-inf`` and index ``-1``.
    """
    n, m = len(pred_keys), len(gt_keys)
    if n == 0 or m == 0:
        return np.full(n, -np.inf), np.full(n, -1, dtype=np.int64)
    if mode == "pair":
        overlap = np.minimum(
            box_iou(pred_subject_boxes, gt_subject_boxes), box_iou(pred_object_boxes, gt_object_boxes)
        )
    else:
        overlap = box_iou(
            union_boxes(pred_subject_boxes, pred_object_boxes), union_boxes(gt_subject_boxes, gt_object_boxes)
        )
    same_key = np.asarray(pred_keys)[:, None] == np.asarray(gt_keys)[None, :]
    overlap = np.where(same_key & ~np.isnan(overlap), overlap, -np.inf)
    index = np.argmax(overlap, axis=1)
    best = overlap[np.arange(n), index]
    index = np.where(np.isfinite(best), index, -1)
    return best, index
