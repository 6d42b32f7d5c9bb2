"""What a model hands to the evaluators: scored relation triplets per image.

A prediction is one ``<subject, predicate, object>`` triplet with both boxes
(``x1, y1, x2, y2`` pixels), both categories, the predicate id and a score.
Category and predicate ids live in the id space of the ground-truth file the
evaluator is given (HICO-DET: COCO-91 object ids and verbs 1..117; V-COCO: the
29 QPIC verb ids 0..28; Open Images: the file's object and predicate ids), so
a model's output can be compared to the ground truth without any remapping.

``Triplet`` is the readable per-triplet form; ``ImagePredictions`` is the
columnar form the evaluators work on (a full HICO-DET test run is ~10^6
triplets, too many to handle as Python objects in the inner loops).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence, Union

import numpy as np

from stages.evaluation.boxes import as_boxes

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class Triplet:
    """One scored relation. ``object_box=None`` means "no object" (V-COCO roles)."""

    subject_box: Sequence[float]
    object_box: Sequence[float] | None
    subject_category: int
    object_category: int
    predicate: int
    score: float


@dataclass(eq=False)
class ImagePredictions:
    """The triplets of one image as parallel arrays (row ``i`` is triplet ``i``).

    A missing object box is a row of NaNs in ``object_boxes``.
    """

    subject_boxes: np.ndarray  # (n, 4) float64
    object_boxes: np.ndarray  # (n, 4) float64, NaN rows = no object
    subject_categories: np.ndarray  # (n,) int64
    object_categories: np.ndarray  # (n,) int64
    predicates: np.ndarray  # (n,) int64
    scores: np.ndarray  # (n,) float64

    def __post_init__(self) -> None:
        self.subject_boxes = as_boxes(self.subject_boxes)
        self.object_boxes = as_boxes(self.object_boxes)
        self.subject_categories = np.asarray(self.subject_categories, dtype=np.int64).reshape(-1)
        self.object_categories = np.asarray(self.object_categories, dtype=np.int64).reshape(-1)
        self.predicates = np.asarray(self.predicates, dtype=np.int64).reshape(-1)
        self.scores = np.asarray(self.scores, dtype=np.float64).reshape(-1)
        n = len(self.scores)
        lengths = {
            len(self.subject_boxes),
            len(self.object_boxes),
            len(self.subject_categories),
            len(self.object_categories),
            len(self.predicates),
        }
        if lengths != {n}:
            raise ValueError(f"ImagePredictions columns differ in length: {sorted(lengths | {n})}")
        if np.isnan(self.scores).any():
            raise ValueError("ImagePredictions scores contain NaN")

    def __len__(self) -> int:
        return len(self.scores)

    @classmethod
    def empty(cls) -> "ImagePredictions":
        return cls(np.zeros((0, 4)), np.zeros((0, 4)), [], [], [], [])

    @classmethod
    def from_triplets(cls, triplets: Sequence[Triplet]) -> "ImagePredictions":
        if not triplets:
            return cls.empty()
        nan_box = (np.nan, np.nan, np.nan, np.nan)
        return cls(
            subject_boxes=[t.subject_box for t in triplets],
            object_boxes=[nan_box if t.object_box is None else t.object_box for t in triplets],
            subject_categories=[t.subject_category for t in triplets],
            object_categories=[t.object_category for t in triplets],
            predicates=[t.predicate for t in triplets],
            scores=[t.score for t in triplets],
        )

    def take(self, index: np.ndarray) -> "ImagePredictions":
        """The rows at ``index`` (an integer or boolean array), in that order."""
        return ImagePredictions(
            self.subject_boxes[index],
            self.object_boxes[index],
            self.subject_categories[index],
            self.object_categories[index],
            self.predicates[index],
            self.scores[index],
        )

    def rank_order(self, keep: np.ndarray | None = None, top_k: int | None = None) -> np.ndarray:
        """Row indices by descending score (ties keep input order), filtered by ``keep``, then cut.

        ``keep`` filters *before* the cut; ``top_k`` keeps the best ``k``.
        """
        order = np.argsort(-self.scores, kind="stable")
        if keep is not None:
            order = order[np.asarray(keep, dtype=bool)[order]]
        if top_k is not None:
            order = order[:top_k]
        return order


PredictionsLike = Union[ImagePredictions, Sequence[Triplet]]


def as_image_predictions(predictions: PredictionsLike) -> ImagePredictions:
    if isinstance(predictions, ImagePredictions):
        return predictions
    return ImagePredictions.from_triplets(list(predictions))


def align_predictions(
    predictions: Mapping[str, PredictionsLike], file_names: Sequence[str]
) -> list[ImagePredictions]:
    """Predictions in ground-truth order (images without predictions get none).

    Predictions for an image the ground truth does not know are an error: they
    almost always mean the two sides were keyed differently, and silently
    dropping them would report a wrong score.
    """
    if not file_names:
        raise ValueError("no ground-truth images to evaluate")
    known = set(file_names)
    unknown = [name for name in predictions if name not in known]
    if unknown:
        shown = ", ".join(repr(n) for n in sorted(unknown)[:5])
        raise ValueError(f"predictions for {len(unknown)} image(s) not in the ground truth, e.g. {shown}")
    empty = ImagePredictions.empty()
    return [as_image_predictions(predictions[name]) if name in predictions else empty for name in file_names]
