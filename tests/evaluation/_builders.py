"""Small ground-truth and prediction builders shared by the evaluation tests."""

from __future__ import annotations

import numpy as np

from stages.evaluation.predictions import ImagePredictions
from storage.downstream import RelationImage

PERSON, BICYCLE, CUP = 1, 2, 47  # COCO-91 ids


def relation_image(file_name: str, boxes, labels, relations) -> RelationImage:
    return RelationImage(
        file_name,
        None,
        np.asarray(boxes, dtype=np.float64).reshape(-1, 4),
        np.asarray(labels, dtype=np.int64),
        np.asarray(relations, dtype=np.int64).reshape(-1, 3),
    )


def gt_as_predictions(image: RelationImage, score: float = 1.0) -> ImagePredictions:
    s, o, p = image.relations.T
    return ImagePredictions(image.boxes[s], image.boxes[o], image.labels[s], image.labels[o], p, [score] * len(p))
