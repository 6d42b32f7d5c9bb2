"""Open Images v6 SGG: R@50, wmAP_rel, wmAP_phr and score_wtd.

``score_wtd = 0.2 * R@50 + 0.4 * wmAP_rel + 0.4 * wmAP_phr`` in both
protocols below; they differ in what an "AP class" is and in details, so the
protocol is explicit and recorded in the result.

``protocol="rlipv2"`` (default) — RLIPv2's ``datasets/oi_sgg_eval.py``
(``OISGGEvaluator``), the numbers RLIPv2 reports on its HICO-style conversion:

* per image the ``K`` best triplets are kept (K = 100 for the APs, 50 for
  R@50), then triplets whose (subject category, object category, predicate)
  never occurs in the ground truth are ignored;
* an AP class is such a *triplet*; relation matching is QPIC's (best same-class
  relation by ``min(IoU_s, IoU_o) >= 0.5``, first claim wins, duplicates are
  false positives); phrase matching does the same with the IoU of the
  subject-object union boxes;
* AP is 11-point; wmAP weights each triplet's AP by its ground-truth count;
  R@50 = true positives among the top 50 / ground-truth relations.

``protocol="reldn"`` — the Open Images challenge-style evaluation of
RelDN/BGNN (PySGG ``oi_evaluation.eval_rel_results`` + ``ap_eval_rel``),
used for most published SGG baselines:

* per image the 100 best triplets with score > 1e-5;
* R@50: a ground-truth relation is recalled when any of the top 50 has its
  three labels and ``IoU_s >= 0.5``, ``IoU_o >= 0.5`` (many-to-many, no
  greedy assignment), summed over images;
* an AP class is a *predicate*; a detection's best ground truth is the
  same-labelled relation of largest overlap, a TP if that overlap is
  **> 0.5** (strict) and unclaimed; AP is all-point; mAP averages over all
  ``num_predicates`` predicates, wmAP weights by each predicate's count.

Both use the inclusive ``+1`` IoU; predictions are sorted with ties kept in
input order.
"""

from __future__ import annotations

from typing import Literal, Mapping, Sequence

import numpy as np

from stages.evaluation.ap import grouped_ap
from stages.evaluation.boxes import box_iou
from stages.evaluation.matching import PairMode, best_relation_matches, first_claims
from stages.evaluation.predictions import ImagePredictions, PredictionsLike, align_predictions
from stages.evaluation.report import EvalResult
from storage.downstream import RelationImage

Protocol = Literal["rlipv2", "reldn"]
IOU_THRESHOLD = 0.5
RECALL_K = 50
AP_K = 100
RELDN_MIN_SCORE = 1e-5
NUM_PREDICATES = 30
PROTOCOLS = {
    "rlipv2": "OI v6 SGG, RLIPv2 OISGGEvaluator: per-triplet 11-point AP, top-100 (AP) / top-50 (R@50)",
    "reldn": "OI v6 SGG, RelDN/BGNN oi_evaluation: per-predicate all-point AP (IoU > 0.5), top-100",
}


def _triplet_codes(
    subjects: np.ndarray, objects: np.ndarray, predicates: np.ndarray, codebook: dict[tuple[int, int, int], int]
) -> np.ndarray:
    return np.asarray(
        [codebook.get(key, -1) for key in zip(subjects.tolist(), objects.tolist(), predicates.tolist())],
        dtype=np.int64,
    )


def _gt_triplets(image: RelationImage) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    s, o, p = image.relations.T
    if (o < 0).any():
        raise ValueError(f"{image.file_name}: scene-graph relations need an object box")
    return image.labels[s], image.labels[o], p, image.boxes[s], image.boxes[o]


def _match_image(
    keys: np.ndarray,
    preds: ImagePredictions,
    gt_keys: np.ndarray,
    gt_sub: np.ndarray,
    gt_obj: np.ndarray,
    mode: PairMode,
) -> tuple[np.ndarray, np.ndarray]:
    return best_relation_matches(keys, preds.subject_boxes, preds.object_boxes, gt_keys, gt_sub, gt_obj, mode)


def evaluate_oi_sgg(
    predictions: Mapping[str, PredictionsLike],
    ground_truth: Sequence[RelationImage],
    *,
    protocol: Protocol = "rlipv2",
    num_predicates: int = NUM_PREDICATES,
) -> EvalResult:
    """Score ``predictions`` (keyed by file name) against ``read_oi_rlipv2`` ground truth."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown Open Images protocol {protocol!r}; choose from {sorted(PROTOCOLS)}")
    aligned = align_predictions(predictions, [g.file_name for g in ground_truth])
    if protocol == "rlipv2":
        return _evaluate_rlipv2(aligned, ground_truth)
    return _evaluate_reldn(aligned, ground_truth, num_predicates)


def _evaluate_rlipv2(aligned: list[ImagePredictions], ground_truth: Sequence[RelationImage]) -> EvalResult:
    codebook: dict[tuple[int, int, int], int] = {}
    gt = []
    for image in ground_truth:
        sub_l, obj_l, pred_l, sub_b, obj_b = _gt_triplets(image)
        for key in zip(sub_l.tolist(), obj_l.tolist(), pred_l.tolist()):
            codebook.setdefault(key, len(codebook))
        gt.append((_triplet_codes(sub_l, obj_l, pred_l, codebook), sub_b, obj_b))
    num_positives = np.bincount(
        np.concatenate([g[0] for g in gt] + [np.zeros(0, np.int64)]), minlength=len(codebook)
    )

    columns: dict[str, list[np.ndarray]] = {k: [] for k in ("cls", "score", "rank", "rel", "phr", "rel_t", "phr_t")}
    gt_offset = 0
    for (gt_keys, gt_sub, gt_obj), preds in zip(gt, aligned):
        order = preds.rank_order(top_k=AP_K)
        ranked = preds.take(order)
        keys = _triplet_codes(ranked.subject_categories, ranked.object_categories, ranked.predicates, codebook)
        counted = keys >= 0  # RLIPv2 skips triplets absent from the ground truth after the cut
        ranked, keys, rank = ranked.take(counted), keys[counted], np.flatnonzero(counted)
        rel_overlap, rel_best = _match_image(keys, ranked, gt_keys, gt_sub, gt_obj, "pair")
        phr_overlap, phr_best = _match_image(keys, ranked, gt_keys, gt_sub, gt_obj, "union")
        columns["cls"].append(keys)
        columns["score"].append(ranked.scores)
        columns["rank"].append(rank)
        columns["rel"].append(rel_overlap >= IOU_THRESHOLD)
        columns["phr"].append(phr_overlap >= IOU_THRESHOLD)
        columns["rel_t"].append(rel_best + gt_offset)
        columns["phr_t"].append(phr_best + gt_offset)
        gt_offset += len(gt_keys)
    c = {k: np.concatenate(v) if v else np.zeros(0) for k, v in columns.items()}
    classes = c["cls"].astype(np.int64)
    rel_tp = first_claims(c["rel"], c["rel_t"])
    phr_tp = first_claims(c["phr"], c["phr_t"])
    # Greedy decisions only look at earlier detections, so RLIPv2's separate top-50
    # run finds exactly the true positives this top-100 run finds in its first 50.
    total = max(int(num_positives.sum()), 1)
    recall_50 = float(rel_tp[c["rank"] < RECALL_K].sum()) / total
    recall_100 = float(rel_tp.sum()) / total

    rel_ap, _ = grouped_ap(classes, c["score"], rel_tp, num_positives, "11-point")
    phr_ap, _ = grouped_ap(classes, c["score"], phr_tp, num_positives, "11-point")
    weights = num_positives / total
    names = {code: f"{s}-{p}-{o}" for (s, o, p), code in codebook.items()}
    return _result(
        "rlipv2",
        recall_50,
        recall_100,
        rel_ap,
        phr_ap,
        weights,
        names,
        {"images": len(ground_truth), "gt_relations": int(num_positives.sum()), "detections": int(len(classes)),
         "triplet_classes": len(codebook)},
    )  # fmt: skip


def _evaluate_reldn(
    aligned: list[ImagePredictions], ground_truth: Sequence[RelationImage], num_predicates: int
) -> EvalResult:
    # A detection can only match a relation with the same three labels; encode
    # them as one key so the shared matcher applies.
    codebook: dict[tuple[int, int, int], int] = {}
    columns: dict[str, list[np.ndarray]] = {k: [] for k in ("pred", "score", "rel", "phr", "rel_t", "phr_t")}
    num_positives = np.zeros(num_predicates, dtype=np.int64)
    recalled_50 = recalled_100 = 0
    gt_offset = 0
    for image, preds in zip(ground_truth, aligned):
        sub_l, obj_l, pred_l, gt_sub, gt_obj = _gt_triplets(image)
        if ((pred_l < 0) | (pred_l >= num_predicates)).any():
            raise ValueError(f"{image.file_name}: predicate outside 0..{num_predicates - 1}")
        num_positives += np.bincount(pred_l, minlength=num_predicates)
        for key in zip(sub_l.tolist(), obj_l.tolist(), pred_l.tolist()):
            codebook.setdefault(key, len(codebook))
        gt_keys = _triplet_codes(sub_l, obj_l, pred_l, codebook)
        order = preds.rank_order(top_k=AP_K)
        order = order[preds.scores[order] > RELDN_MIN_SCORE]
        ranked = preds.take(order)
        keys = _triplet_codes(ranked.subject_categories, ranked.object_categories, ranked.predicates, codebook)

        # Recall: many-to-many label + IoU matches; a relation counts at K if any of
        # the first K detections matches it.
        if len(gt_keys) and len(keys):
            hits = (
                (keys[:, None] == gt_keys[None, :])
                & (box_iou(ranked.subject_boxes, gt_sub) >= IOU_THRESHOLD)
                & (box_iou(ranked.object_boxes, gt_obj) >= IOU_THRESHOLD)
            )
            found = hits.any(axis=0)
            first_hit = np.argmax(hits, axis=0)[found]
            recalled_50 += int((first_hit < RECALL_K).sum())
            recalled_100 += int((first_hit < AP_K).sum())

        rel_overlap, rel_best = _match_image(keys, ranked, gt_keys, gt_sub, gt_obj, "pair")
        phr_overlap, phr_best = _match_image(keys, ranked, gt_keys, gt_sub, gt_obj, "union")
        columns["pred"].append(ranked.predicates)
        columns["score"].append(ranked.scores)
        columns["rel"].append(rel_overlap > IOU_THRESHOLD)
        columns["phr"].append(phr_overlap > IOU_THRESHOLD)
        columns["rel_t"].append(rel_best + gt_offset)
        columns["phr_t"].append(phr_best + gt_offset)
        gt_offset += len(gt_keys)
    c = {k: np.concatenate(v) if v else np.zeros(0) for k, v in columns.items()}
    predicates = c["pred"].astype(np.int64)
    in_range = (predicates >= 0) & (predicates < num_predicates)
    rel_tp = first_claims(c["rel"], c["rel_t"])[in_range]
    phr_tp = first_claims(c["phr"], c["phr_t"])[in_range]
    predicates, scores = predicates[in_range], c["score"][in_range]

    total = max(int(num_positives.sum()), 1)
    rel_ap, _ = grouped_ap(predicates, scores, rel_tp, num_positives, "all-point")
    phr_ap, _ = grouped_ap(predicates, scores, phr_tp, num_positives, "all-point")
    # ap_eval gives predicates without ground truth an AP of 0, and they stay in the mean.
    rel_ap, phr_ap = np.nan_to_num(rel_ap, nan=0.0), np.nan_to_num(phr_ap, nan=0.0)
    return _result(
        "reldn",
        recalled_50 / total,
        recalled_100 / total,
        rel_ap,
        phr_ap,
        num_positives / total,
        {p: str(p) for p in range(num_predicates)},
        {"images": len(ground_truth), "gt_relations": int(num_positives.sum()), "detections": int(len(predicates)),
         "predicate_classes": num_predicates},
    )  # fmt: skip


def _result(
    protocol: Protocol,
    recall_50: float,
    recall_100: float,
    rel_ap: np.ndarray,
    phr_ap: np.ndarray,
    weights: np.ndarray,
    names: dict[int, str],
    counts: dict[str, int],
) -> EvalResult:
    def mean(ap: np.ndarray) -> float:
        return float(np.nanmean(ap)) if np.isfinite(ap).any() else float("nan")

    def weighted(ap: np.ndarray) -> float:
        return float(np.nansum(ap * weights))

    w_rel, w_phr = weighted(rel_ap), weighted(phr_ap)
    metrics = {
        "R@50": recall_50 * 100.0,
        "wmAP_rel": w_rel * 100.0,
        "wmAP_phr": w_phr * 100.0,
        "score_wtd": (0.2 * recall_50 + 0.4 * w_rel + 0.4 * w_phr) * 100.0,
        "R@100": recall_100 * 100.0,
        "mAP_rel": mean(rel_ap) * 100.0,
        "mAP_phr": mean(phr_ap) * 100.0,
    }
    per_class = {
        "AP_rel": {names[i]: float(v * 100.0) for i, v in enumerate(rel_ap)},
        "AP_phr": {names[i]: float(v * 100.0) for i, v in enumerate(phr_ap)},
    }
    return EvalResult("oi-sgg", PROTOCOLS[protocol], metrics, per_class, counts)
