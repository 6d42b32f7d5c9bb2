"""V-COCO role AP: scenario 1 vs 2, ignored people, duplicates; official ground truth on real images."""

from __future__ import annotations

import json

import numpy as np
import pytest

from stages.evaluation.predictions import Triplet
from stages.evaluation.vcoco import ROLE_CLASS_NAMES, evaluate_vcoco
from storage.downstream import VCOCO_ACTIONS, VCOCO_VERBS, VcocoImage, read_vcoco_official

HOLD, EAT = 0, 7  # action indices; eat's roles are (obj, instr)
A, C, IGNORED = [0, 0, 49, 99], [200, 0, 249, 99], [400, 0, 449, 99]
CAKE, KNIFE, BALL = [50, 50, 80, 80], [60, 20, 70, 40], [250, 50, 280, 80]


def verb(name: str) -> int:
    return VCOCO_VERBS.index(name)


def vcoco_image(people, ignore, doing, file_name="x.jpg") -> VcocoImage:
    """``doing``: {(person, action): [role box or None, role box or None]}."""
    actions = np.zeros((len(people), len(VCOCO_ACTIONS)), dtype=np.int8)
    roles = np.full((len(people), len(VCOCO_ACTIONS), 2, 4), np.nan)
    for (p, a), boxes in doing.items():
        actions[p, a] = 1
        for r, box in enumerate(boxes):
            if box is not None:
                roles[p, a, r] = box
    return VcocoImage(1, file_name, np.asarray(people, float), np.asarray(ignore), actions, roles)


def role_ap(result, scenario: str, name: str) -> float:
    return result.per_class[f"AP_{scenario}"][name]


def test_role_classes_follow_vsrl_eval():
    assert len(ROLE_CLASS_NAMES) == 25 and ROLE_CLASS_NAMES[0] == "hold-obj"
    assert {"eat-obj", "eat-instr", "cut-instr", "cut-obj", "hit-instr", "hit-obj"} <= set(ROLE_CLASS_NAMES)


def test_perfect_predictions_score_100():
    image = vcoco_image([A, C], [False, False], {(0, EAT): [CAKE, None], (1, HOLD): [BALL]})
    preds = {"x.jpg": [
        Triplet(A, CAKE, 1, 61, verb("eat_obj"), 0.9),
        Triplet(A, None, 1, -1, verb("eat_instr"), 0.8),
        Triplet(C, BALL, 1, 37, verb("hold_obj"), 0.7),
        Triplet(C, None, 1, -1, verb("stand"), 0.7),  # role-less verbs carry no role AP
    ]}  # fmt: skip
    result = evaluate_vcoco(preds, [image])
    assert result.metrics["AP_role_S1"] == 100.0 and result.metrics["AP_role_S2"] == 100.0
    assert result.counts["classes_with_positives"] == 3  # hold-obj, eat-obj, eat-instr


def test_scenario_1_wants_an_empty_box_when_the_role_has_no_object():
    # A eats with no instrument annotated; the model still predicts a knife box.
    image = vcoco_image([A], [False], {(0, EAT): [CAKE, None]})
    preds = {"x.jpg": [Triplet(A, KNIFE, 1, 49, verb("eat_instr"), 0.9)]}
    result = evaluate_vcoco(preds, [image])
    assert role_ap(result, "S1", "eat-instr") == 0.0
    assert role_ap(result, "S2", "eat-instr") == 100.0
    # An all-zero box means "no object" in scenario 1, like NaN/None.
    zero_box = {"x.jpg": [Triplet(A, [0, 0, 0, 0], 1, -1, verb("eat_instr"), 0.9)]}
    assert role_ap(evaluate_vcoco(zero_box, [image]), "S1", "eat-instr") == 100.0


def test_missing_role_box_fails_when_the_role_has_an_object():
    image = vcoco_image([A], [False], {(0, EAT): [CAKE, KNIFE]})
    preds = {"x.jpg": [Triplet(A, None, 1, -1, verb("eat_instr"), 0.9)]}
    result = evaluate_vcoco(preds, [image])
    assert role_ap(result, "S1", "eat-instr") == 0.0 and role_ap(result, "S2", "eat-instr") == 0.0


def test_detections_on_unannotated_people_are_skipped():
    image = vcoco_image([A, IGNORED], [False, True], {(0, HOLD): [CAKE]})
    hold = verb("hold_obj")
    preds = {"x.jpg": [Triplet(IGNORED, CAKE, 1, 61, hold, 0.9), Triplet(A, CAKE, 1, 61, hold, 0.5)]}
    assert role_ap(evaluate_vcoco(preds, [image]), "S1", "hold-obj") == 100.0


def test_duplicates_and_wrong_roles_are_false_positives():
    image = vcoco_image([A, C], [False, False], {(0, HOLD): [CAKE], (1, HOLD): [BALL]})
    preds = {"x.jpg": [
        Triplet(A, CAKE, 1, 61, verb("hold_obj"), 0.9),  # TP
        Triplet(A, CAKE, 1, 61, verb("hold_obj"), 0.8),  # duplicate: FP
        Triplet(C, KNIFE, 1, 49, verb("hold_obj"), 0.75),  # wrong object box: FP
        Triplet(C, BALL, 1, 37, verb("hold_obj"), 0.7),  # TP
    ]}  # fmt: skip
    # All-point AP: recall 0.5 at precision 1, recall 1 at precision 2/4.
    assert role_ap(evaluate_vcoco(preds, [image]), "S1", "hold-obj") == pytest.approx(75.0)


def test_official_ground_truth_of_real_images(shared_data):
    vcoco_dir = shared_data / "v-coco"
    instances = shared_data / "coco-mini" / "annotations" / "instances_train2017.json"
    val = read_vcoco_official(vcoco_dir / "vcoco_val.json", instances, [69468, 211325])
    train = read_vcoco_official(vcoco_dir / "vcoco_train.json", instances, [183872])
    busy = val[1]
    assert busy.image_id == 211325 and len(busy.person_boxes) == 7 and busy.ignore.sum() == 5

    # Boxes are vsrl_eval's inclusive corners: x2 = x1 + w - 1.
    coco = json.loads(instances.read_text())
    ann = next(a for a in coco["annotations"] if a["image_id"] == 183872 and a["category_id"] == 1)
    x, y, w, h = ann["bbox"]
    assert train[0].person_boxes[0].tolist() == pytest.approx([x, y, x + w - 1, y + h - 1])

    for gt in (val, train):
        preds = {}
        for image in gt:
            triplets = []
            for p in np.flatnonzero(~image.ignore):
                for a, (action, roles) in enumerate(VCOCO_ACTIONS):
                    for r, role in enumerate(roles[1:]):
                        if image.actions[p, a] == 1:
                            box = image.role_boxes[p, a, r]
                            obj = None if np.isnan(box).all() else box
                            triplets.append(Triplet(image.person_boxes[p], obj, 1, -1, verb(f"{action}_{role}"), 1.0))
            preds[image.file_name] = triplets
        result = evaluate_vcoco(preds, gt)
        assert result.metrics["AP_role_S1"] == 100.0 and result.metrics["AP_role_S2"] == 100.0
        assert result.counts["classes_with_positives"] >= 1
