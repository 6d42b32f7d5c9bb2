"""HICO-DET evaluator on hand-built cases with hand-computed answers, and on the shared sample."""

from __future__ import annotations

import numpy as np
import pytest

from stages.evaluation.hico_det import evaluate_hico_det
from stages.evaluation.predictions import ImagePredictions, Triplet
from storage.downstream import load_hico_meta, read_hico_qpic
from tests.evaluation._builders import BICYCLE, CUP, PERSON, gt_as_predictions, relation_image

P1, P2 = [0, 0, 49, 99], [200, 0, 249, 99]
B1, B2 = [0, 100, 99, 149], [200, 100, 299, 149]
TWO_RIDERS = relation_image("a.jpg", [P1, B1, P2, B2], [PERSON, BICYCLE, PERSON, BICYCLE], [[0, 1, 1], [2, 3, 1]])


def ride(person, bike, score, verb=1, obj=BICYCLE, subject=PERSON):
    return Triplet(person, bike, subject, obj, verb, score)


def test_perfect_predictions_score_100(tiny_meta):
    cup_image = relation_image("b.jpg", [P1, [10, 10, 30, 30]], [PERSON, CUP], [[0, 1, 3]])
    gt = [TWO_RIDERS, cup_image]
    result = evaluate_hico_det({g.file_name: gt_as_predictions(g) for g in gt}, gt, tiny_meta)
    assert result.metrics["mAP_full"] == 100.0
    assert result.metrics["mAP_rare"] == 100.0 and result.metrics["mAP_non_rare"] == 100.0
    assert result.counts["classes_full"] == 2 and result.counts["classes_rare"] == 1


def test_one_swapped_box_gives_known_ap(tiny_meta):
    # The second rider is paired with the first bicycle: a false positive after a true one.
    # Precision 1 up to recall 0.5, so 6 of the 11 recall thresholds: AP = 6/11.
    preds = {"a.jpg": [ride(P1, B1, 0.9), ride(P2, B1, 0.8)]}
    assert evaluate_hico_det(preds, [TWO_RIDERS], tiny_meta).metrics["mAP_full"] == pytest.approx(600 / 11)
    # Ranked first, the wrong pair halves the precision at every reached threshold: 6 * 0.5 / 11.
    preds = {"a.jpg": [ride(P2, B1, 0.9), ride(P1, B1, 0.8)]}
    assert evaluate_hico_det(preds, [TWO_RIDERS], tiny_meta).metrics["mAP_full"] == pytest.approx(300 / 11)


def test_duplicate_detections_are_false_positives(tiny_meta):
    # TP, duplicate (FP), TP: precision 1 up to recall 0.5 (6 thresholds), then 2/3 (5 thresholds).
    preds = {"a.jpg": [ride(P1, B1, 0.9), ride(P1, B1, 0.8), ride(P2, B2, 0.7)]}
    expected = (6 * 1.0 + 5 * 2 / 3) / 11 * 100
    assert evaluate_hico_det(preds, [TWO_RIDERS], tiny_meta).metrics["mAP_full"] == pytest.approx(expected)


def test_wrong_verb_or_object_never_matches(tiny_meta):
    preds = {"a.jpg": [ride(P1, B1, 0.9, verb=2), ride(P2, B2, 0.8)]}
    result = evaluate_hico_det(preds, [TWO_RIDERS], tiny_meta)
    # Class 0: one TP of 2 positives at precision 1 -> 6/11; class 1 has no ground truth.
    assert result.metrics["mAP_full"] == pytest.approx(600 / 11)
    assert result.counts["classes_full"] == 1


def test_top_100_cut_per_image(tiny_meta):
    far = [500, 500, 520, 520]
    misses = [ride(far, far, 0.9) for _ in range(100)]
    preds = {"a.jpg": misses + [ride(P1, B1, 0.5), ride(P2, B2, 0.5)]}
    assert evaluate_hico_det(preds, [TWO_RIDERS], tiny_meta).metrics["mAP_full"] == 0.0
    wider = evaluate_hico_det(preds, [TWO_RIDERS], tiny_meta, max_per_image=102)
    assert wider.metrics["mAP_full"] > 0.0


def test_non_hoi_triplets_are_dropped_before_the_cut(tiny_meta):
    # (bicycle, verb 3) is no HICO class and a cup is no subject: neither uses a top-100 slot.
    junk = [ride(P1, B1, 0.9, verb=3) for _ in range(60)] + [ride(P1, B1, 0.9, subject=CUP) for _ in range(60)]
    preds = {"a.jpg": junk + [ride(P1, B1, 0.5), ride(P2, B2, 0.5)]}
    assert evaluate_hico_det(preds, [TWO_RIDERS], tiny_meta).metrics["mAP_full"] == 100.0


def test_detections_on_images_without_that_class_are_false_positives(tiny_meta):
    empty = relation_image("c.jpg", [P1], [PERSON], [])
    preds = {"c.jpg": [ride(P1, B1, 0.9)], "a.jpg": [ride(P1, B1, 0.5), ride(P2, B2, 0.4)]}
    # FP, TP, TP over 2 positives: precision 1/2 at recall 0.5 and 2/3 at 1 -> (6 * 2/3 + 5 * 2/3) / 11.
    result = evaluate_hico_det(preds, [TWO_RIDERS, empty], tiny_meta)
    assert result.metrics["mAP_full"] == pytest.approx(200 / 3)


def test_predictions_for_unknown_images_are_rejected(tiny_meta):
    with pytest.raises(ValueError, match="not in the ground truth"):
        evaluate_hico_det({"zzz.jpg": ImagePredictions.empty()}, [TWO_RIDERS], tiny_meta)


def test_shared_sample_ground_truth_as_predictions(shared_data):
    meta = load_hico_meta(shared_data / "hico-det" / "hico_meta.json")
    gt = read_hico_qpic(shared_data / "hico-det" / "test_hico.subset.json")
    result = evaluate_hico_det({g.file_name: gt_as_predictions(g) for g in gt}, gt, meta)
    assert result.metrics == {"mAP_full": 100.0, "mAP_rare": 100.0, "mAP_non_rare": 100.0, "mean_max_recall": 100.0}
    assert result.counts["images"] == 100 and result.counts["gt_relations"] == 310
    assert result.counts["classes_rare"] + result.counts["classes_non_rare"] == result.counts["classes_full"]


def test_shared_sample_fixes_the_index_bases(shared_data):
    """QPIC verb ids are 1-based and hico_meta indices 0-based: only that reading maps every relation."""
    meta = load_hico_meta(shared_data / "hico-det" / "hico_meta.json")
    gt = read_hico_qpic(shared_data / "hico-det" / "test_hico.subset.json")
    lookup = meta.hoi_lookup()
    objects = np.concatenate([g.labels[g.relations[:, 1]] for g in gt])
    verbs = np.concatenate([g.relations[:, 2] for g in gt])
    assert (lookup[objects, verbs] >= 0).all()
    assert (lookup[objects, verbs - 1] >= 0).mean() < 0.2
    # HICO_test2015_00000001: people sitting on a bench (COCO 15, verb 88).
    assert meta.hoi_name(lookup[15, 88]) == "sit on bench"


def test_empty_ground_truth_is_an_error(tiny_meta):
    with pytest.raises(ValueError, match="no ground-truth images"):
        evaluate_hico_det({}, [], tiny_meta)
