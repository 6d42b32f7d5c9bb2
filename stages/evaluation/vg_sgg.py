"""Visual Genome scene-graph evaluation: PredCls, SGCls and SGDet, R@K and mR@K.

The protocol of Neural Motifs / Scene-Graph-Benchmark (Tang et al.), which
almost every VG150 result since 2018 is reported with:

* **graph constraint** (``R@K``, ``mR@K``): each candidate pair contributes one
  triplet, its best predicate; triplets are ranked by
  ``predicate score × subject score × object score``;
* **no graph constraint** (``ngR@K``, ``ng-mR@K``): every (pair, predicate)
  is a triplet with score ``subject score × object score × predicate score``;
* a ground-truth relation is recalled at K when one of the first K triplets
  has its three labels and both boxes overlap its boxes with IoU ≥ 0.5 (many
  to many: one prediction may recall two identical ground-truth relations);
* ``R@K`` is the per-image recall averaged over images; ``mR@K`` first
  averages, per predicate, the per-image recall of that predicate's relations
  over the images that have it, then averages over *all* predicates of the
  split (a predicate absent from the evaluated images counts 0, as in
  Scene-Graph-Benchmark's ``SGMeanRecall``).

The three tasks differ only in what the model is given: PredCls gets the
ground-truth boxes and labels, SGCls the boxes, SGDet nothing. The evaluator
checks that PredCls/SGCls predictions keep the ground-truth boxes (and, for
PredCls, labels) so that a mislabelled task is an error, not a silent number.

Indices are 0-based (VG-SGG files are 1-based; :mod:`stages.evaluation.vg_files`
converts). IoU uses the inclusive ``+1`` convention of the reference code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Mapping, Sequence

import numpy as np

from stages.evaluation.boxes import as_boxes, box_iou
from stages.evaluation.report import EvalResult
from storage.downstream import RelationImage

Task = Literal["predcls", "sgcls", "sgdet"]
TASKS: tuple[str, ...] = ("predcls", "sgcls", "sgdet")
RECALL_KS: tuple[int, ...] = (20, 50, 100)
IOU_THRESHOLD = 0.5
PROTOCOL = "VG SGG, Motifs/Scene-Graph-Benchmark: per-image R@K, mR@K over all predicates, IoU >= 0.5"


@dataclass(eq=False)
class SceneGraphPrediction:
    """A model's scene graph for one image.

    ``boxes`` (N, 4) x1, y1, x2, y2 pixels with ``labels`` and ``scores`` (N,);
    ``pairs`` (P, 2) subject/object rows of ``boxes``; ``predicate_scores``
    (P, R) a score per predicate (no background column).
    """

    boxes: np.ndarray
    labels: np.ndarray
    scores: np.ndarray
    pairs: np.ndarray
    predicate_scores: np.ndarray

    def __post_init__(self) -> None:
        self.boxes = as_boxes(self.boxes)
        self.labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
        self.scores = np.asarray(self.scores, dtype=np.float64).reshape(-1)
        self.pairs = np.asarray(self.pairs, dtype=np.int64).reshape(-1, 2)
        self.predicate_scores = np.asarray(self.predicate_scores, dtype=np.float64)
        if self.predicate_scores.ndim != 2 or len(self.predicate_scores) != len(self.pairs):
            raise ValueError(f"predicate_scores must be (pairs, predicates); got {self.predicate_scores.shape} "
                             f"for {len(self.pairs)} pairs")
        if not len(self.boxes) == len(self.labels) == len(self.scores):
            raise ValueError("boxes, labels and scores must have one row per object")
        if len(self.pairs) and (self.pairs.min() < 0 or self.pairs.max() >= len(self.boxes)):
            raise ValueError("pairs index objects outside boxes")

    @classmethod
    def for_predcls(cls, image: RelationImage, pairs: np.ndarray, predicate_scores: np.ndarray
                    ) -> "SceneGraphPrediction":
        """PredCls input: the ground-truth boxes and labels, each with score 1."""
        return cls(image.boxes, image.labels, np.ones(len(image.labels)), pairs, predicate_scores)


def ranked_triplets(prediction: SceneGraphPrediction, graph_constraint: bool, top_k: int
                    ) -> tuple[np.ndarray, np.ndarray]:
    """The best ``top_k`` triplets as ``(pair row, predicate)`` arrays, best first (ties keep input order)."""
    if not len(prediction.pairs):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    pair_scores = prediction.scores[prediction.pairs[:, 0]] * prediction.scores[prediction.pairs[:, 1]]
    if graph_constraint:
        predicates = prediction.predicate_scores.argmax(axis=1)
        scores = prediction.predicate_scores.max(axis=1) * pair_scores
        order = np.argsort(-scores, kind="stable")[:top_k]
        return order, predicates[order]
    overall = (pair_scores[:, None] * prediction.predicate_scores).reshape(-1)
    order = np.argsort(-overall, kind="stable")[:top_k]
    return order // prediction.predicate_scores.shape[1], order % prediction.predicate_scores.shape[1]


def first_recall_rank(image: RelationImage, prediction: SceneGraphPrediction, graph_constraint: bool,
                      top_k: int) -> np.ndarray:
    """Per ground-truth relation, the rank of the first triplet recalling it (``top_k`` when none does)."""
    gt = image.relations
    rank = np.full(len(gt), top_k, dtype=np.int64)
    rows, predicates = ranked_triplets(prediction, graph_constraint, top_k)
    if not len(gt) or not len(rows):
        return rank
    sub, obj = prediction.pairs[rows, 0], prediction.pairs[rows, 1]
    labels_match = (
        (prediction.labels[sub][:, None] == image.labels[gt[:, 0]][None, :])
        & (prediction.labels[obj][:, None] == image.labels[gt[:, 1]][None, :])
        & (predicates[:, None] == gt[:, 2][None, :])
    )
    boxes_match = (
        (box_iou(prediction.boxes[sub], image.boxes[gt[:, 0]]) >= IOU_THRESHOLD)
        & (box_iou(prediction.boxes[obj], image.boxes[gt[:, 1]]) >= IOU_THRESHOLD)
    )
    hits = labels_match & boxes_match
    found = hits.any(axis=0)
    rank[found] = np.argmax(hits, axis=0)[found]
    return rank


def _check_task(task: Task, image: RelationImage, prediction: SceneGraphPrediction) -> None:
    if task == "sgdet":
        return
    if prediction.boxes.shape != image.boxes.shape or not np.allclose(prediction.boxes, image.boxes):
        raise ValueError(f"{image.file_name}: {task} predictions must keep the ground-truth boxes")
    if task == "predcls" and not np.array_equal(prediction.labels, image.labels):
        raise ValueError(f"{image.file_name}: predcls predictions must keep the ground-truth labels")


def evaluate_vg_sgg(
    predictions: Mapping[str, SceneGraphPrediction],
    ground_truth: Sequence[RelationImage],
    *,
    task: Task,
    num_predicates: int,
    predicate_names: Sequence[str] | None = None,
    ks: Sequence[int] = RECALL_KS,
) -> EvalResult:
    """R@K, mR@K, ngR@K and ng-mR@K in percent; an image without a prediction recalls nothing."""
    if task not in TASKS:
        raise ValueError(f"unknown VG task {task!r}; choose from {', '.join(TASKS)}")
    names = list(predicate_names) if predicate_names is not None else [str(p) for p in range(num_predicates)]
    if len(names) != num_predicates:
        raise ValueError(f"{len(names)} predicate names for {num_predicates} predicates")
    ks = sorted(set(int(k) for k in ks))
    top_k = ks[-1]
    recalls: dict[tuple[bool, int], list[float]] = {(c, k): [] for c in (True, False) for k in ks}
    per_predicate: dict[tuple[bool, int], list[list[float]]] = {
        (c, k): [[] for _ in range(num_predicates)] for c in (True, False) for k in ks}
    evaluated = relations = 0
    for image in ground_truth:
        gt_predicates = image.relations[:, 2] if len(image.relations) else np.zeros(0, np.int64)
        if not len(gt_predicates):
            continue  # as the reference, which evaluates only images with relations
        if gt_predicates.min() < 0 or gt_predicates.max() >= num_predicates:
            raise ValueError(f"{image.file_name}: predicate outside 0..{num_predicates - 1}")
        evaluated += 1
        relations += len(gt_predicates)
        prediction = predictions.get(image.file_name)
        if prediction is not None:
            _check_task(task, image, prediction)
            if prediction.predicate_scores.shape[1] != num_predicates:
                raise ValueError(f"{image.file_name}: {prediction.predicate_scores.shape[1]} predicate scores, "
                                 f"expected {num_predicates}")
        for constrained in (True, False):
            rank = (first_recall_rank(image, prediction, constrained, top_k) if prediction is not None
                    else np.full(len(gt_predicates), top_k))
            for k in ks:
                hit = rank < k
                recalls[(constrained, k)].append(float(hit.mean()))
                for p in np.unique(gt_predicates):
                    per_predicate[(constrained, k)][p].append(float(hit[gt_predicates == p].mean()))

    metrics: dict[str, float] = {}
    per_class: dict[str, dict[str, float]] = {}
    for constrained, prefix in ((True, ""), (False, "ng")):
        for k in ks:
            values = recalls[(constrained, k)]
            metrics[f"{prefix}R@{k}"] = 100.0 * float(np.mean(values)) if values else float("nan")
        for k in ks:
            means = [float(np.mean(v)) if v else 0.0 for v in per_predicate[(constrained, k)]]
            metrics[f"{prefix}{'-' if prefix else ''}mR@{k}"] = 100.0 * float(np.mean(means)) if means else 0.0
            per_class[f"{prefix}{'-' if prefix else ''}R@{k}"] = {
                names[p]: 100.0 * m for p, m in enumerate(means)}
    return EvalResult(
        benchmark=f"vg-{task}",
        protocol=PROTOCOL,
        metrics=metrics,
        per_class=per_class,
        counts={"images": evaluated, "gt_relations": relations, "predicates": num_predicates,
                "predicted_images": sum(1 for g in ground_truth if g.file_name in predictions)},
    )


__all__ = ["RECALL_KS", "SceneGraphPrediction", "TASKS", "Task", "evaluate_vg_sgg", "first_recall_rank",
           "ranked_triplets"]
