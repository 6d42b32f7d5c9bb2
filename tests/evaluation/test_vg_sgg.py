"""Visual Genome SGG evaluation on hand-computed cases, and the VG-SGG file readers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from stages.evaluation.vg_files import read_vg_sgg, restrict_predicates
from stages.evaluation.vg_sgg import SceneGraphPrediction, evaluate_vg_sgg
from storage.downstream import RelationImage

PREDICATES = ["riding", "wearing", "near"]


def _image_a() -> RelationImage:
    # man, horse, hat; man riding horse, man wearing hat.
    boxes = np.asarray([[0, 0, 99, 99], [50, 50, 149, 149], [10, 0, 29, 19]], dtype=np.float64)
    return RelationImage("a.jpg", 1, boxes, np.asarray([0, 1, 2]), np.asarray([[0, 1, 0], [0, 2, 1]]))


def _image_b() -> RelationImage:
    boxes = np.asarray([[0, 0, 49, 49], [0, 0, 19, 19]], dtype=np.float64)
    return RelationImage("b.jpg", 2, boxes, np.asarray([0, 2]), np.asarray([[0, 1, 1]]))


def _predcls_predictions() -> dict[str, SceneGraphPrediction]:
    a, b = _image_a(), _image_b()
    return {
        # Best predicates: (0,1) riding .6 (right), (0,2) near .5 (wrong; wearing .3), (1,0) near .9 (no such GT).
        "a.jpg": SceneGraphPrediction.for_predcls(
            a, np.asarray([[0, 1], [0, 2], [1, 0]]),
            np.asarray([[0.6, 0.1, 0.3], [0.2, 0.3, 0.5], [0.1, 0.1, 0.9]])),
        "b.jpg": SceneGraphPrediction.for_predcls(b, np.asarray([[0, 1]]), np.asarray([[0.2, 0.7, 0.1]])),
    }


def test_predcls_recall_and_mean_recall_by_hand() -> None:
    result = evaluate_vg_sgg(_predcls_predictions(), [_image_a(), _image_b()], task="predcls",
                             num_predicates=3, predicate_names=PREDICATES, ks=(1, 2, 5))
    m = result.metrics
    # Graph constraint, image a ranks (1,0,near) .9, (0,1,riding) .6, (0,2,near) .5: riding at rank 2,
    # wearing never. Image b: wearing at rank 1. R@K averages per-image recall.
    assert (m["R@1"], m["R@2"], m["R@5"]) == pytest.approx((50.0, 75.0, 75.0))
    # No graph constraint, image a: .9 near, .6 riding, .5 near, then the .3 ties in input order:
    # (0,1,near) before (0,2,wearing), which lands at rank 5.
    assert (m["ngR@1"], m["ngR@2"], m["ngR@5"]) == pytest.approx((50.0, 75.0, 100.0))
    # mR: riding {a}, wearing {a, b}, near no image (counts 0) -> divided by all 3 predicates.
    assert (m["mR@1"], m["mR@2"], m["mR@5"]) == pytest.approx((50 / 3, 50.0, 50.0))
    assert (m["ng-mR@1"], m["ng-mR@2"], m["ng-mR@5"]) == pytest.approx((50 / 3, 50.0, 200 / 3))
    assert result.per_class["R@2"] == pytest.approx({"riding": 100.0, "wearing": 50.0, "near": 0.0})
    assert result.counts["images"] == 2 and result.counts["gt_relations"] == 3


def test_sgdet_uses_object_scores_and_box_overlap() -> None:
    gt = RelationImage("c.jpg", 3, np.asarray([[0, 0, 99, 99], [100, 0, 199, 99]], dtype=np.float64),
                       np.asarray([0, 1]), np.asarray([[0, 1, 0]]))
    prediction = SceneGraphPrediction(
        # Box 2 has the right label but IoU 1/3 with the horse (50 of 100 columns shared).
        boxes=np.asarray([[0, 0, 99, 99], [100, 0, 199, 99], [150, 0, 249, 99]]),
        labels=np.asarray([0, 1, 1]),
        scores=np.asarray([0.9, 0.5, 1.0]),
        pairs=np.asarray([[0, 2], [0, 1]]),
        predicate_scores=np.asarray([[0.8, 0.2], [0.7, 0.3]]),
    )
    # Triplet scores .8 * .9 * 1.0 = .72 (misplaced) before .7 * .9 * .5 = .315 (right).
    result = evaluate_vg_sgg({"c.jpg": prediction}, [gt], task="sgdet", num_predicates=2, ks=(1, 2))
    assert (result.metrics["R@1"], result.metrics["R@2"]) == (0.0, 100.0)
    assert result.metrics["mR@2"] == 50.0  # predicate 1 has no relation: it counts 0


def test_missing_prediction_recalls_nothing_and_tasks_are_checked() -> None:
    predictions = _predcls_predictions()
    only_b = {"b.jpg": predictions["b.jpg"]}
    result = evaluate_vg_sgg(only_b, [_image_a(), _image_b()], task="predcls", num_predicates=3, ks=(1,))
    assert result.metrics["R@1"] == 50.0 and result.counts["predicted_images"] == 1
    wrong_labels = SceneGraphPrediction(_image_b().boxes, np.asarray([1, 2]), np.ones(2), np.asarray([[0, 1]]),
                                        np.asarray([[0.2, 0.7, 0.1]]))
    with pytest.raises(ValueError, match="ground-truth labels"):
        evaluate_vg_sgg({"b.jpg": wrong_labels}, [_image_b()], task="predcls", num_predicates=3)
    # SGCls may relabel (and then misses: the subject is no longer class 0), but not move boxes.
    assert evaluate_vg_sgg({"b.jpg": wrong_labels}, [_image_b()], task="sgcls",
                           num_predicates=3).metrics["R@100"] == 0.0
    moved = SceneGraphPrediction(_image_b().boxes + 1, _image_b().labels, np.ones(2), np.asarray([[0, 1]]),
                                 np.asarray([[0.2, 0.7, 0.1]]))
    with pytest.raises(ValueError, match="ground-truth boxes"):
        evaluate_vg_sgg({"b.jpg": moved}, [_image_b()], task="sgcls", num_predicates=3)


def _write_vg_files(folder: Path) -> None:
    h5py = pytest.importorskip("h5py")
    images = [  # 1592 is one of the corrupted images the h5 file leaves out
        {"image_id": 1, "width": 2048, "height": 1024}, {"image_id": 1592, "width": 10, "height": 10},
        {"image_id": 2, "width": 512, "height": 1024}, {"image_id": 3, "width": 100, "height": 100},
    ]
    (folder / "image_data.json").write_text(json.dumps(images))
    (folder / "VG-SGG-dicts-with-attri.json").write_text(json.dumps({
        "idx_to_label": {"1": "man", "2": "horse", "3": "hat"},
        "idx_to_predicate": {"1": "riding", "2": "wearing", "3": "on"},
    }))
    with h5py.File(folder / "VG-SGG-with-attri.h5", "w") as h5:
        h5["split"] = np.asarray([2, 2, 2])  # all test; image 3 has no relation
        h5["img_to_first_box"] = np.asarray([0, 2, 4])
        h5["img_to_last_box"] = np.asarray([1, 3, 4])
        h5["img_to_first_rel"] = np.asarray([0, 2, -1])
        h5["img_to_last_rel"] = np.asarray([1, 2, -1])
        h5["boxes_1024"] = np.asarray([[100, 100, 50, 50], [200, 100, 100, 40], [512, 512, 100, 100],
                                       [500, 500, 20, 20], [10, 10, 4, 4]], dtype=np.int32)
        h5["labels"] = np.asarray([[1], [2], [1], [3], [2]])
        h5["relationships"] = np.asarray([[0, 1], [1, 0], [2, 3]])
        h5["predicates"] = np.asarray([[1], [3], [2]])


def test_reader_converts_boxes_and_indices(tmp_path: Path) -> None:
    _write_vg_files(tmp_path)
    graphs = read_vg_sgg(tmp_path, "test")
    assert graphs.object_classes == ["man", "horse", "hat"] and graphs.predicates == ["riding", "wearing", "on"]
    assert [g.file_name for g in graphs.images] == ["1.jpg", "2.jpg"]  # image 3 has no relations
    first = graphs.images[0]
    # cx 100, cy 100, w 50, h 50 at longer side 1024 -> x1y1x2y2 75..125, times 2048 / 1024.
    np.testing.assert_allclose(first.boxes[0], [150, 150, 250, 250])
    assert first.labels.tolist() == [0, 1]
    assert first.relations.tolist() == [[0, 1, 0], [1, 0, 2]]
    assert graphs.images[1].relations.tolist() == [[0, 1, 1]]  # global box rows 2, 3 -> local 0, 1
    assert len(read_vg_sgg(tmp_path, "test", filter_empty_rels=False).images) == 3


def test_refined_split_keeps_and_merges_predicates(tmp_path: Path) -> None:
    _write_vg_files(tmp_path)
    graphs = read_vg_sgg(tmp_path, "test")
    refined = restrict_predicates(graphs, ["wearing", "riding"])
    assert refined.predicates == ["wearing", "riding"]
    assert [g.relations.tolist() for g in refined.images] == [[[0, 1, 1]], [[0, 1, 0]]]
    merged = restrict_predicates(graphs, ["riding"], merge={"on": "riding"})
    assert [g.relations.tolist() for g in merged.images] == [[[0, 1, 0], [1, 0, 0]]]
    with pytest.raises(ValueError, match="not in the split"):
        restrict_predicates(graphs, ["flying"])
