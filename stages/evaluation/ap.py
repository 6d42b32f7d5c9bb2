"""Average precision from ranked true/false positives, the two community variants.

* ``ap_11_point`` — PASCAL VOC 2007 11-point interpolation: the mean over
  ``t in {0, 0.1, ..., 1}`` of the best precision at recall >= ``t``. The
  official HICO-DET MATLAB code (``VOCevaldet_bboxpair.m``: ``for t = 0:0.1:1``)
  and QPIC/CDN/RLIPv2's ``hico_eval.voc_ap`` both use it, and so does RLIPv2's
  Open Images evaluator. The thresholds are ``np.arange(0.0, 1.1, 0.1)`` as in
  the Python tools, whose floating-point values (``0.30000000000000004`` ...)
  decide ties when a recall lands exactly on a tenth.
* ``ap_all_point`` — VOC 2010+ area under the monotone precision envelope,
  used by V-COCO's ``vsrl_eval.voc_ap`` and the RelDN/BGNN Open Images
  ``ap_eval_rel.get_ap``.

``grouped_ap`` computes one AP per class over detections given in processing
order, sorting each class's detections by descending score with ties kept in
that order (a stable sort; the reference tools use unstable sorts, so tied
scores are the only place results may differ).
"""

from __future__ import annotations

from typing import Callable, Literal

import numpy as np

VOC11_THRESHOLDS = np.arange(0.0, 1.1, 0.1)


def ap_11_point(recall: np.ndarray, precision: np.ndarray) -> float:
    recall = np.asarray(recall, dtype=np.float64)
    precision = np.asarray(precision, dtype=np.float64)
    if recall.size == 0:
        return 0.0
    # Best precision at recall >= t is a suffix maximum, since recall only grows.
    suffix_max = np.maximum.accumulate(precision[::-1])[::-1]
    first = np.searchsorted(recall, VOC11_THRESHOLDS, side="left")
    reached = first < recall.size
    return float(suffix_max[first[reached]].sum() / len(VOC11_THRESHOLDS))


def ap_all_point(recall: np.ndarray, precision: np.ndarray) -> float:
    recall = np.concatenate(([0.0], np.asarray(recall, dtype=np.float64), [1.0]))
    precision = np.concatenate(([0.0], np.asarray(precision, dtype=np.float64), [0.0]))
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    steps = np.flatnonzero(recall[1:] != recall[:-1])
    return float(np.sum((recall[steps + 1] - recall[steps]) * envelope[steps + 1]))


APMethod = Literal["11-point", "all-point"]
_AP_FUNCTIONS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "11-point": ap_11_point,
    "all-point": ap_all_point,
}


def grouped_ap(
    classes: np.ndarray,
    scores: np.ndarray,
    true_positive: np.ndarray,
    num_positives: np.ndarray,
    method: APMethod,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-class AP and max recall.

    ``classes``/``scores``/``true_positive`` describe every counted detection
    (false positives included) in processing order; ``num_positives[c]`` is the
    number of ground-truth instances of class ``c``. Classes with no ground
    truth get NaN; classes with ground truth but no detection get 0.
    """
    ap_function = _AP_FUNCTIONS[method]
    num_positives = np.asarray(num_positives, dtype=np.float64)
    num_classes = len(num_positives)
    ap = np.where(num_positives > 0, 0.0, np.nan)
    max_recall = ap.copy()
    classes = np.asarray(classes, dtype=np.int64)
    if classes.size == 0:
        return ap, max_recall
    # lexsort is stable: within a class, equal scores keep processing order.
    order = np.lexsort((-np.asarray(scores, dtype=np.float64), classes))
    sorted_classes = classes[order]
    hits = np.asarray(true_positive, dtype=np.float64)[order]
    bounds = np.flatnonzero(np.diff(sorted_classes)) + 1
    starts = np.concatenate(([0], bounds))
    ends = np.concatenate((bounds, [len(sorted_classes)]))
    for start, end in zip(starts, ends):
        cls = int(sorted_classes[start])
        if not 0 <= cls < num_classes:
            raise ValueError(f"class id {cls} outside 0..{num_classes - 1}")
        if num_positives[cls] <= 0:
            continue
        tp = np.cumsum(hits[start:end])
        fp = np.arange(1, end - start + 1) - tp
        recall = tp / num_positives[cls]
        precision = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
        ap[cls] = ap_function(recall, precision)
        max_recall[cls] = recall[-1]
    return ap, max_recall
