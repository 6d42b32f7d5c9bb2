"""Box overlap helpers shared by every evaluator.

All three community protocols measure overlap with the *inclusive pixel*
convention inherited from the PASCAL VOC / MATLAB tools: a box ``x1..x2``
covers ``x2 - x1 + 1`` pixels, so widths, heights and intersections all get a
``+ 1``. This is what the official HICO-DET MATLAB code
(``VOCevaldet_bboxpair.m``), V-COCO's ``vsrl_eval.get_overlap`` and the
maskrcnn-benchmark ``boxlist_iou`` used by the Open Images SGG tools do, so
one function serves all of them.

QPIC's Python port returns 0 whenever the (+1) intersection is at most one
pixel wide; the official code counts that pixel. The two differ only for
overlaps far below the 0.5 threshold (or for degenerate boxes), so the
official behaviour is kept.

Overlaps are computed in float64 (some reference tools cast to float32 first,
which can only matter for an overlap within float32 rounding of a threshold).
Boxes are ``float64`` arrays of ``x1, y1, x2, y2`` in pixels. A row of NaNs
means "no box": every overlap with it is NaN, which fails any ``>=``/``>``
threshold test, exactly as NaN role boxes do in ``vsrl_eval``.
"""

from __future__ import annotations

import numpy as np


def as_boxes(boxes: object) -> np.ndarray:
    """``boxes`` as a float64 ``(N, 4)`` array (an empty input gives ``(0, 4)``)."""
    array = np.asarray(boxes, dtype=np.float64)
    if array.size == 0:
        return np.zeros((0, 4), dtype=np.float64)
    return array.reshape(-1, 4)


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of broadcast-compatible ``(..., 4)`` box arrays."""
    # np.maximum propagates NaN, so "no box" rows stay NaN instead of becoming 0.
    inter_w = np.maximum(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]) + 1.0, 0.0)
    inter_h = np.maximum(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]) + 1.0, 0.0)
    inter = inter_w * inter_h
    area_a = (a[..., 2] - a[..., 0] + 1.0) * (a[..., 3] - a[..., 1] + 1.0)
    area_b = (b[..., 2] - b[..., 0] + 1.0) * (b[..., 3] - b[..., 1] + 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return inter / (area_a + area_b - inter)


def box_iou(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """Pairwise inclusive-pixel IoU: an ``(N, M)`` matrix for ``(N, 4)`` and ``(M, 4)`` boxes."""
    return _iou(as_boxes(boxes_a)[:, None, :], as_boxes(boxes_b)[None, :, :])


def paired_iou(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """Inclusive-pixel IoU of row ``i`` of ``boxes_a`` with row ``i`` of ``boxes_b`` (``(N,)``)."""
    a = as_boxes(boxes_a)
    b = as_boxes(boxes_b)
    if a.shape != b.shape:
        raise ValueError(f"paired_iou needs equal shapes, got {a.shape} and {b.shape}")
    return _iou(a, b)


def union_boxes(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """The smallest box enclosing row ``i`` of both inputs: the *phrase* box of a relation."""
    a = as_boxes(boxes_a)
    b = as_boxes(boxes_b)
    return np.concatenate([np.minimum(a[:, :2], b[:, :2]), np.maximum(a[:, 2:], b[:, 2:])], axis=1)
