"""V-COCO role AP, scenarios 1 and 2, as the official ``vsrl_eval._do_role_eval``.

Predictions are triplets whose ``predicate`` is one of QPIC's 29 V-COCO verbs
(``VCOCO_VERBS``: ``hold_obj``, ``cut_instr``, ``stand`` ...). Each
role-bearing verb is one (action, role) class; the 4 role-less verbs
(``stand``, ``walk``, ``run``, ``smile``) carry no role AP and are ignored.
A triplet is exactly one row of QPIC's ``generate_vcoco_official`` detection
for that action-role: person box = subject box, role box = object box
(``None``/NaN when the model predicts no object), score = triplet score.

Per image and class, walking detections by descending score (``vsrl_eval``):

* the detection is matched to the ground-truth person with the largest IoU
  with its subject box (first on ties), *whatever the IoU*;
* if that person is one V-COCO did not annotate, the detection is skipped —
  neither TP nor FP;
* role overlap: the IoU of the predicted and ground-truth role boxes; when the
  matched person has no object for this role, **scenario 1** counts the role
  as correct only if the prediction has no box either (all-zero or all-NaN),
  **scenario 2** counts it correct whatever was predicted;
* TP iff the person does the action, person IoU >= 0.5, role overlap >= 0.5
  and the person is not yet covered for this class; otherwise FP.

AP is the all-point VOC AP (``vsrl_eval.voc_ap``) with ``#pos`` = the people
doing the action. ``AP_role`` is the mean over the role classes (the official
printout, 25 classes on the test set); ``AP_role_*_no_point`` leaves out
``point_instr``, the 24-class variant RLIPv2's copy of ``vsrl_eval`` also
prints. Two edge cases the official code cannot reach on its test set are
defined here: a class with no positives has AP NaN and is left out of the
means (``vsrl_eval`` would fail an assertion), and an image without people
makes its detections false positives (``vsrl_eval`` would crash).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from stages.evaluation.ap import grouped_ap
from stages.evaluation.boxes import box_iou, paired_iou
from stages.evaluation.matching import first_claims
from stages.evaluation.predictions import PredictionsLike, align_predictions
from stages.evaluation.report import EvalResult
from storage.downstream import VCOCO_ACTIONS, VCOCO_VERBS, VcocoImage

IOU_THRESHOLD = 0.5
PROTOCOL = "V-COCO vsrl_eval role AP (all-point), scenarios 1 and 2"

# The role classes in vsrl_eval's (action, role) order, and each QPIC verb's class.
ROLE_CLASSES: tuple[tuple[int, int], ...] = tuple(
    (a, r) for a, (_, roles) in enumerate(VCOCO_ACTIONS) for r in range(len(roles) - 1)
)
ROLE_CLASS_NAMES: tuple[str, ...] = tuple(
    f"{VCOCO_ACTIONS[a][0]}-{VCOCO_ACTIONS[a][1][r + 1]}" for a, r in ROLE_CLASSES
)
_VERB_TO_CLASS = np.full(len(VCOCO_VERBS), -1, dtype=np.int64)
for _c, (_a, _r) in enumerate(ROLE_CLASSES):
    _VERB_TO_CLASS[VCOCO_VERBS.index(f"{VCOCO_ACTIONS[_a][0]}_{VCOCO_ACTIONS[_a][1][_r + 1]}")] = _c
_CLASS_ACTION = np.asarray([a for a, _ in ROLE_CLASSES], dtype=np.int64)
_CLASS_ROLE = np.asarray([r for _, r in ROLE_CLASSES], dtype=np.int64)
_POINT = ROLE_CLASS_NAMES.index("point-instr")


def _role_overlaps(gt_role: np.ndarray, pred_role: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Role overlap under scenario 1 and scenario 2 for matched rows."""
    no_gt_role = np.isnan(gt_role).all(axis=1)
    predicted_nothing = (pred_role == 0.0).all(axis=1) | np.isnan(pred_role).all(axis=1)
    iou = paired_iou(np.where(no_gt_role[:, None], 0.0, gt_role), pred_role)
    scenario_1 = np.where(no_gt_role, predicted_nothing.astype(np.float64), iou)
    scenario_2 = np.where(no_gt_role, 1.0, iou)
    return scenario_1, scenario_2


def evaluate_vcoco(
    predictions: Mapping[str, PredictionsLike],
    ground_truth: Sequence[VcocoImage],
) -> EvalResult:
    """Score ``predictions`` (keyed by file name) against ``read_vcoco_official`` ground truth."""
    aligned = align_predictions(predictions, [g.file_name for g in ground_truth])
    num_classes = len(ROLE_CLASSES)
    positives_per_action = np.zeros(len(VCOCO_ACTIONS), dtype=np.int64)

    classes, scores, passed_1, passed_2, targets = [], [], [], [], []
    person_offset = 0
    for image, preds in zip(ground_truth, aligned):
        annotated = ~image.ignore
        positives_per_action += (image.actions[annotated] == 1).sum(axis=0)
        verbs = preds.predicates
        known = (verbs >= 0) & (verbs < len(VCOCO_VERBS))
        role_class = np.full(len(verbs), -1, dtype=np.int64)
        role_class[known] = _VERB_TO_CLASS[verbs[known]]
        ranked = preds.take(preds.rank_order(keep=role_class >= 0))
        ranked_class = _VERB_TO_CLASS[ranked.predicates]
        num_people = len(image.person_boxes)
        if num_people == 0:
            classes.append(ranked_class)
            scores.append(ranked.scores)
            passed_1.append(np.zeros(len(ranked), bool))
            passed_2.append(np.zeros(len(ranked), bool))
            targets.append(np.zeros(len(ranked), np.int64))
            continue

        person_iou = box_iou(ranked.subject_boxes, image.person_boxes)
        person = np.argmax(np.nan_to_num(person_iou, nan=-np.inf), axis=1)
        person_overlap = person_iou[np.arange(len(ranked)), person]
        counted = ~image.ignore[person]
        ranked_class, person, person_overlap = ranked_class[counted], person[counted], person_overlap[counted]
        action, role = _CLASS_ACTION[ranked_class], _CLASS_ROLE[ranked_class]
        gt_role = image.role_boxes[person, action, role]
        overlap_1, overlap_2 = _role_overlaps(gt_role, ranked.object_boxes[counted])
        agent_ok = (image.actions[person, action] == 1) & (person_overlap >= IOU_THRESHOLD)

        classes.append(ranked_class)
        scores.append(ranked.scores[counted])
        passed_1.append(agent_ok & (overlap_1 >= IOU_THRESHOLD))
        passed_2.append(agent_ok & (overlap_2 >= IOU_THRESHOLD))
        # "covered" is kept per image, class and person: one id per (person, class).
        targets.append((person_offset + person) * num_classes + ranked_class)
        person_offset += num_people

    classes_all = np.concatenate(classes) if classes else np.zeros(0, np.int64)
    scores_all = np.concatenate(scores) if scores else np.zeros(0)
    targets_all = np.concatenate(targets) if targets else np.zeros(0, np.int64)
    num_positives = positives_per_action[_CLASS_ACTION]
    results = {}
    for name, passed in (("S1", passed_1), ("S2", passed_2)):
        tp = first_claims(np.concatenate(passed), targets_all) if passed else np.zeros(0, bool)
        ap, _ = grouped_ap(classes_all, scores_all, tp, num_positives, "all-point")
        results[name] = ap

    def mean(ap: np.ndarray, drop_point: bool = False) -> float:
        values = np.delete(ap, _POINT) if drop_point else ap
        values = values[~np.isnan(values)]
        return float(values.mean() * 100.0) if values.size else float("nan")

    metrics = {
        "AP_role_S1": mean(results["S1"]),
        "AP_role_S2": mean(results["S2"]),
        "AP_role_S1_no_point": mean(results["S1"], drop_point=True),
        "AP_role_S2_no_point": mean(results["S2"], drop_point=True),
    }
    per_class = {
        f"AP_{name}": {cls: float(ap[i] * 100.0) for i, cls in enumerate(ROLE_CLASS_NAMES)}
        for name, ap in results.items()
    }
    counts = {
        "images": len(ground_truth),
        "people": int(sum(len(g.person_boxes) for g in ground_truth)),
        "positive_actions": int(positives_per_action.sum()),
        "detections": int(len(classes_all)),
        "classes_with_positives": int((num_positives > 0).sum()),
    }
    return EvalResult("v-coco", PROTOCOL, metrics, per_class, counts)
