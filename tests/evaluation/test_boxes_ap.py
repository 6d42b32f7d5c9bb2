"""IoU convention and the two AP variants on values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from stages.evaluation.ap import ap_11_point, ap_all_point, grouped_ap
from stages.evaluation.boxes import box_iou, paired_iou, union_boxes
from stages.evaluation.matching import first_claims


def test_iou_uses_inclusive_pixels():
    # [0,9] covers 10 pixels; [5,14] overlaps it on 5 columns: 50 / (100 + 100 - 50).
    a = [[0, 0, 9, 9]]
    b = [[5, 0, 14, 9]]
    assert box_iou(a, b)[0, 0] == pytest.approx(50 / 150)
    assert box_iou(a, a)[0, 0] == 1.0
    # Touching on one pixel column still overlaps under the +1 convention.
    assert box_iou([[0, 0, 9, 9]], [[9, 0, 18, 9]])[0, 0] == pytest.approx(10 / 190)
    assert box_iou([[0, 0, 9, 9]], [[10, 0, 19, 9]])[0, 0] == 0.0


def test_nan_box_never_overlaps():
    value = paired_iou([[0, 0, 9, 9]], [[np.nan] * 4])[0]
    assert math.isnan(value) and not value >= 0.5


def test_union_box():
    assert union_boxes([[0, 5, 10, 10]], [[3, 0, 20, 8]]).tolist() == [[0, 0, 20, 10]]


def test_ap_11_point_hand_values():
    # TP then FP over 2 positives: precision 1 up to recall 0.5 -> 6 of 11 thresholds.
    assert ap_11_point([0.5, 0.5], [1.0, 0.5]) == pytest.approx(6 / 11)
    # Recall exactly 0.3 misses np.arange's 0.30000000000000004 threshold, as in the Python tools.
    assert ap_11_point([0.3], [1.0]) == pytest.approx(3 / 11)
    assert ap_11_point([], []) == 0.0


def test_ap_all_point_hand_values():
    # TP, FP, TP over 2 positives: 0.5 * 1 + 0.5 * 2/3.
    assert ap_all_point([0.5, 0.5, 1.0], [1.0, 0.5, 2 / 3]) == pytest.approx(0.5 + 1 / 3)
    assert ap_all_point([1.0], [1.0]) == 1.0


def test_grouped_ap_sorts_per_class_and_marks_missing_classes():
    # Class 0: FP (0.9) before TP (0.5); class 1 has positives but no detection; class 2 no positives.
    ap, max_recall = grouped_ap([0, 0], [0.5, 0.9], [True, False], [1, 1, 0], "all-point")
    assert ap[0] == pytest.approx(0.5) and ap[1] == 0.0 and math.isnan(ap[2])
    assert max_recall[0] == 1.0


def test_first_claims_counts_duplicates_as_false_positives():
    passed = np.array([True, True, False, True])
    target = np.array([7, 7, 8, 8])
    assert first_claims(passed, target).tolist() == [True, False, False, True]
