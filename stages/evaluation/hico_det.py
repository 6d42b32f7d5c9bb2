"""HICO-DET mAP, Default setting: Full / Rare / Non-Rare over the 600 HOI classes.

Protocol, and the reference behaviour each choice reproduces:

* **Classes.** A triplet is scored as the HOI class of its (object category,
  verb) pair via ``hico_meta.json``'s 600 rows; subjects must be people.
  Predictions that name no HOI class (a non-person subject, or an
  object-verb pair HICO does not have) are dropped *before* the per-image
  cut — QPIC/RLIPv2 multiply such scores by 0 with ``correct_mat`` first.
* **Top 100 per image.** Each image keeps its 100 best-scored triplets
  (QPIC's ``max_hois``), ties kept in input order.
* **True positive.** Walking an image's detections by descending score, each
  takes the same-class ground-truth pair with the largest
  ``min(IoU(human), IoU(object))`` (first on ties), already-matched or not; it
  is a TP iff that overlap is >= 0.5 and the pair is not yet matched, else a
  FP (duplicates included) — ``VOCevaldet_bboxpair.m`` and QPIC's
  ``compute_fptp`` (see ``matching``). IoU uses the inclusive ``+1`` pixel
  convention of the official code.
* **AP.** Per class, VOC 2007 **11-point** interpolated AP. The official
  MATLAB evaluation (``for t = 0:0.1:1``) and QPIC/CDN/RLIPv2's
  ``hico_eval.voc_ap`` both use 11-point, not the all-point VOC 2010 AP.
* **Means.** Full = mean AP over the classes with ground truth in the
  evaluated images (all 600 on the full test set; QPIC's ``gt_triplets``);
  Rare / Non-Rare = the same mean restricted to ``hico_meta.json``'s rare
  (< 10 training instances) / non-rare classes.

Zero-shot (NF) runs use the same protocol; the model is given
``HicoMeta.object_texts()`` / ``verb_texts()`` as label texts instead of being
fine-tuned.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from stages.evaluation.ap import grouped_ap
from stages.evaluation.matching import best_relation_matches, first_claims
from stages.evaluation.predictions import PredictionsLike, align_predictions
from stages.evaluation.report import EvalResult
from storage.downstream import COCO_PERSON_ID, HicoMeta, RelationImage

IOU_THRESHOLD = 0.5
MAX_PER_IMAGE = 100
PROTOCOL = "HICO-DET Default: top-100/image, min(IoU_h, IoU_o) >= 0.5, 11-point AP (official MATLAB = QPIC hico_eval)"


def _hoi_ids(lookup: np.ndarray, subjects: np.ndarray, objects: np.ndarray, verbs: np.ndarray) -> np.ndarray:
    """HOI id per triplet, -1 where the triplet is not one of the 600 classes."""
    in_range = (objects >= 0) & (objects < lookup.shape[0]) & (verbs >= 0) & (verbs < lookup.shape[1])
    hoi = np.full(len(verbs), -1, dtype=np.int64)
    hoi[in_range] = lookup[objects[in_range], verbs[in_range]]
    hoi[subjects != COCO_PERSON_ID] = -1
    return hoi


def evaluate_hico_det(
    predictions: Mapping[str, PredictionsLike],
    ground_truth: Sequence[RelationImage],
    meta: HicoMeta,
    *,
    max_per_image: int = MAX_PER_IMAGE,
) -> EvalResult:
    """Score ``predictions`` (keyed by file name) against ``ground_truth`` (``read_hico_qpic``)."""
    lookup = meta.hoi_lookup()
    aligned = align_predictions(predictions, [g.file_name for g in ground_truth])

    gt_hois = []
    for image in ground_truth:
        s, o, v = image.relations.T
        hoi = _hoi_ids(lookup, image.labels[s], image.labels[o], v)
        if (hoi < 0).any():
            bad = image.relations[hoi < 0][0].tolist()
            raise ValueError(f"{image.file_name}: ground-truth relation {bad} is not a HICO-DET HOI class")
        gt_hois.append(hoi)
    num_positives = np.bincount(np.concatenate(gt_hois + [np.zeros(0, np.int64)]), minlength=meta.num_hois)

    classes, scores, passed, targets = [], [], [], []
    gt_offset = 0
    for image, hoi_gt, preds in zip(ground_truth, gt_hois, aligned):
        pred_hoi = _hoi_ids(lookup, preds.subject_categories, preds.object_categories, preds.predicates)
        order = preds.rank_order(keep=pred_hoi >= 0, top_k=max_per_image)
        ranked, ranked_hoi = preds.take(order), pred_hoi[order]
        s, o, _ = image.relations.T
        overlap, best = best_relation_matches(
            ranked_hoi, ranked.subject_boxes, ranked.object_boxes, hoi_gt, image.boxes[s], image.boxes[o]
        )
        classes.append(ranked_hoi)
        scores.append(ranked.scores)
        passed.append(overlap >= IOU_THRESHOLD)
        targets.append(best + gt_offset)
        gt_offset += len(hoi_gt)

    classes_all = np.concatenate(classes) if classes else np.zeros(0, np.int64)
    tp = first_claims(np.concatenate(passed), np.concatenate(targets)) if classes else np.zeros(0, bool)
    # Detections of classes absent from the evaluated ground truth cannot affect any
    # reported AP (QPIC skips them); grouped_ap gives those classes NaN.
    ap, max_recall = grouped_ap(classes_all, np.concatenate(scores), tp, num_positives, "11-point")

    present = num_positives > 0
    rare = np.zeros(meta.num_hois, dtype=bool)
    rare[list(meta.rare)] = True
    non_rare = np.zeros(meta.num_hois, dtype=bool)
    non_rare[list(meta.non_rare)] = True

    def mean(mask: np.ndarray) -> float:
        return float(np.mean(ap[mask]) * 100.0) if mask.any() else float("nan")

    metrics = {
        "mAP_full": mean(present),
        "mAP_rare": mean(present & rare),
        "mAP_non_rare": mean(present & non_rare),
        "mean_max_recall": float(np.mean(max_recall[present]) * 100.0) if present.any() else float("nan"),
    }
    per_class = {
        "AP": {f"{h:03d} {meta.hoi_name(h)}": float(ap[h] * 100.0) for h in np.flatnonzero(present)},
    }
    counts = {
        "images": len(ground_truth),
        "gt_relations": int(num_positives.sum()),
        "detections": int(len(classes_all)),
        "classes_full": int(present.sum()),
        "classes_rare": int((present & rare).sum()),
        "classes_non_rare": int((present & non_rare).sum()),
    }
    return EvalResult("hico-det", PROTOCOL, metrics, per_class, counts)
