"""Post-processing, triplet recall, and checkpoint evaluation on the downstream benchmarks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from model import RLIPv2Config, build_model
from model.checkpoint import save_checkpoint
from stages.train.benchmarks import vcoco_label_space
from stages.train.evaluate import evaluate_checkpoint, to_image_predictions
from stages.train.inference import postprocess, triplet_recall
from stages.train.records import Record, Relation


def _outputs() -> dict:
    # One image, two queries, entities [man, cup, <no object>], relations [hold, see].
    sub = torch.tensor([[[6.0, 0.0, 0.0], [0.0, 0.0, 9.0]]])  # query 1 is most likely no object
    obj = torch.tensor([[[0.0, 6.0, 0.0], [5.0, 0.0, 0.0]]])
    verb = torch.tensor([[[4.0, -4.0], [4.0, 4.0]]])
    boxes = torch.tensor([[[0.5, 0.5, 0.5, 0.5], [0.25, 0.25, 0.5, 0.5]]])
    return {"pred_sub_logits": sub, "pred_obj_logits": obj, "pred_verb_logits": verb,
            "pred_sub_boxes": boxes, "pred_obj_boxes": boxes.flip(1),
            "entity_pad_mask": torch.zeros(1, 3, dtype=torch.bool),
            "relation_pad_mask": torch.zeros(1, 2, dtype=torch.bool),
            "no_object_index": torch.tensor([2])}


def test_postprocess_ranks_triplets_and_scales_boxes() -> None:
    (pred,) = postprocess(_outputs(), [(200, 100)], top_k=3, protocol="all-entities")
    assert len(pred) == 3
    assert pred.scores.tolist() == sorted(pred.scores.tolist(), reverse=True)
    assert (pred.subject_labels[0], pred.predicates[0], pred.object_labels[0]) == (0, 0, 1)
    assert pred.subject_boxes[0].tolist() == [50.0, 25.0, 150.0, 75.0]
    assert pred.object_boxes[0].tolist() == [0.0, 0.0, 100.0, 50.0]
    assert 2 not in pred.subject_labels.tolist()  # the no-object token is never an answer


def test_triplet_recall_needs_texts_and_both_boxes() -> None:
    (pred,) = postprocess(_outputs(), [(200, 100)], top_k=1, protocol="all-entities")
    record = Record(1, "t", "x.jpg", Path("."), [(50, 25, 150, 75), (0, 0, 100, 50)], ["man", "cup"],
                    [Relation(0, 1, "hold"), Relation(0, 1, "see")])
    assert triplet_recall([pred], [record], ["man", "cup"], ["hold", "see"]) == (1, 2)
    moved = Record(1, "t", "x.jpg", Path("."), [(0, 50, 60, 100), (0, 0, 100, 50)], ["man", "cup"],
                   [Relation(0, 1, "hold")])
    assert triplet_recall([pred], [moved], ["man", "cup"], ["hold", "see"]) == (0, 1)


def test_predictions_map_to_benchmark_ids() -> None:
    space = vcoco_label_space()
    (pred,) = postprocess(_outputs(), [(200, 100)], top_k=1, protocol="all-entities")
    mapped = to_image_predictions(pred, space)
    assert mapped.subject_categories.tolist() == [1]  # COCO person
    assert mapped.object_categories.tolist() == [2]  # COCO bicycle: entity index 1
    assert mapped.predicates.tolist() == [0]


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pth"
    return save_checkpoint(path, build_model(RLIPv2Config.tiny("parsed")), {"mode": "pretrain"})


def _hico_images(shared_data: Path, folder: Path, count: int) -> Path:
    """Stand-in pixels for HICO-DET test images (only their annotations are in shared data)."""
    entries = json.loads((shared_data / "hico-det" / "test_hico.subset.json").read_text())[:count]
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for entry in entries:
        Image.fromarray(rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)).save(folder / entry["file_name"])
    return folder


def test_hico_det_evaluation_writes_json_beside_checkpoint(shared_data: Path, tiny_checkpoint: Path,
                                                           tmp_path: Path) -> None:
    images = _hico_images(shared_data, tmp_path / "hico", 3)
    hico = shared_data / "hico-det"
    result, path = evaluate_checkpoint(tiny_checkpoint, "hico-det", hico / "test_hico.subset.json", images,
                                       meta=hico / "hico_meta.json", max_images=3, size=64, max_size=96)
    assert path.parent == tiny_checkpoint.parent and path.name.endswith("eval-hico-det.json")
    saved = json.loads(path.read_text())
    assert {"mAP_full", "mAP_rare", "mAP_non_rare"} <= set(saved["metrics"])
    assert saved["run"]["images_evaluated"] == 3 and saved["counts"]["unreadable_images"] == 0
    assert result.benchmark == "hico-det"


def test_vcoco_evaluation_on_real_coco_images(shared_data: Path, tiny_checkpoint: Path) -> None:
    coco = shared_data / "coco-mini"
    result, path = evaluate_checkpoint(tiny_checkpoint, "v-coco", shared_data / "v-coco" / "vcoco_val.json",
                                       coco / "train2017", size=64, max_size=96,
                                       coco_instances=coco / "annotations" / "instances_train2017.json")
    saved = json.loads(path.read_text())
    assert saved["benchmark"] == "v-coco" and saved["run"]["images_evaluated"] == 2
    assert {"AP_role_S1", "AP_role_S2"} <= set(result.metrics)
