"""Open Images SGG metrics, both protocols, on hand-built cases."""

from __future__ import annotations

import pytest

from stages.evaluation.oi_sgg import evaluate_oi_sgg
from stages.evaluation.predictions import Triplet
from tests.evaluation._builders import gt_as_predictions, relation_image

MAN, HORSE, TABLE = 10, 20, 30
RIDE, AT = 3, 7
M1, H1 = [0, 0, 9, 9], [0, 10, 29, 39]
M2, H2 = [100, 0, 109, 9], [100, 10, 129, 39]
T1 = [300, 300, 399, 399]
SCENE = relation_image(
    "s.jpg", [M1, H1, M2, H2, T1], [MAN, HORSE, MAN, HORSE, TABLE], [[0, 1, RIDE], [2, 3, RIDE], [0, 4, AT], [2, 4, AT]]
)
PROTOCOLS = ("rlipv2", "reldn")


def rel(sub, obj, predicate, score, s=MAN, o=HORSE):
    return Triplet(sub, obj, s, o, predicate, score)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_perfect_predictions_score_100(protocol):
    result = evaluate_oi_sgg({"s.jpg": gt_as_predictions(SCENE)}, [SCENE], protocol=protocol, num_predicates=8)
    for name in ("R@50", "wmAP_rel", "wmAP_phr", "score_wtd"):
        assert result.metrics[name] == pytest.approx(100.0), name


def test_overlap_threshold_is_inclusive_for_rlipv2_strict_for_reldn():
    # The subject box doubles in width: inclusive IoU 100 / 200 = exactly 0.5.
    gt = relation_image("t.jpg", [M1, H1], [MAN, HORSE], [[0, 1, RIDE]])
    preds = {"t.jpg": [rel([0, 0, 19, 9], H1, RIDE, 0.9)]}
    rlipv2 = evaluate_oi_sgg(preds, [gt], protocol="rlipv2")
    reldn = evaluate_oi_sgg(preds, [gt], protocol="reldn")
    assert rlipv2.metrics["wmAP_rel"] == 100.0
    assert reldn.metrics["wmAP_rel"] == 0.0
    # RelDN's recall uses >= 0.5, like RLIPv2's.
    assert reldn.metrics["R@50"] == 100.0 and rlipv2.metrics["R@50"] == 100.0


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_recall_counts_only_the_top_50(protocol):
    gt = relation_image("t.jpg", [M1, H1], [MAN, HORSE], [[0, 1, RIDE]])
    misses = [rel(M2, H2, RIDE, 0.9) for _ in range(50)]
    preds = {"t.jpg": misses + [rel(M1, H1, RIDE, 0.5)]}
    result = evaluate_oi_sgg(preds, [gt], protocol=protocol)
    assert result.metrics["R@50"] == 0.0 and result.metrics["R@100"] == 100.0


def test_score_wtd_combines_the_three_metrics():
    preds = {"s.jpg": [rel(M1, H1, RIDE, 0.9), rel(M1, T1, AT, 0.8, o=TABLE), rel(M2, T1, RIDE, 0.7, o=TABLE)]}
    for protocol in PROTOCOLS:
        m = evaluate_oi_sgg(preds, [SCENE], protocol=protocol, num_predicates=8).metrics
        assert m["score_wtd"] == pytest.approx(0.2 * m["R@50"] + 0.4 * m["wmAP_rel"] + 0.4 * m["wmAP_phr"])


def test_rlipv2_duplicates_and_weighting():
    # man-ride-horse (2 GT): TP, duplicate FP, TP -> 11-point (6 + 5 * 2/3) / 11.
    # man-at-table (2 GT): nothing found -> 0. Weighted by 2/4 each; mAP over 2 triplets.
    preds = {"s.jpg": [rel(M1, H1, RIDE, 0.9), rel(M1, H1, RIDE, 0.8), rel(M2, H2, RIDE, 0.7)]}
    result = evaluate_oi_sgg(preds, [SCENE], protocol="rlipv2")
    ride_ap = (6 + 5 * 2 / 3) / 11 * 100
    assert result.per_class["AP_rel"][f"{MAN}-{RIDE}-{HORSE}"] == pytest.approx(ride_ap)
    assert result.metrics["wmAP_rel"] == pytest.approx(ride_ap / 2)
    assert result.metrics["mAP_rel"] == pytest.approx(ride_ap / 2)
    assert result.metrics["R@50"] == pytest.approx(50.0)


def test_rlipv2_ignores_triplets_absent_from_the_ground_truth():
    # woman-ride-horse never occurs in the ground truth: skipped, not a false positive.
    rides = [rel(M1, H1, RIDE, 0.5), rel(M2, H2, RIDE, 0.5)]
    truth = rides + [rel(M1, T1, AT, 0.5, o=TABLE), rel(M2, T1, AT, 0.5, o=TABLE)]
    preds = {"s.jpg": [rel(M1, H1, RIDE, 0.99, s=99)] + truth}
    assert evaluate_oi_sgg(preds, [SCENE], protocol="rlipv2").metrics["wmAP_rel"] == 100.0


def test_reldn_averages_over_every_predicate():
    # Only 2 of 8 predicates have ground truth; both perfect -> mAP 2/8, wmAP 100.
    result = evaluate_oi_sgg({"s.jpg": gt_as_predictions(SCENE)}, [SCENE], protocol="reldn", num_predicates=8)
    assert result.metrics["mAP_rel"] == pytest.approx(25.0) and result.metrics["wmAP_rel"] == 100.0


def test_unknown_protocol_is_rejected():
    with pytest.raises(ValueError, match="protocol"):
        evaluate_oi_sgg({}, [SCENE], protocol="coco")  # type: ignore[arg-type]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_missed_relations_lower_recall_with_few_predictions(protocol):
    # One detection for four relations: R@50 = 25 even though fewer than 50 were ranked.
    result = evaluate_oi_sgg({"s.jpg": [rel(M1, H1, RIDE, 0.9)]}, [SCENE], protocol=protocol, num_predicates=8)
    assert result.metrics["R@50"] == pytest.approx(25.0)
