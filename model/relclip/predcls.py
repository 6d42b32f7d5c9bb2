"""Visual Genome PredCls with the RelCLIP classifier.

PredCls gives the model the ground-truth boxes and labels; the classifier
scores every ordered pair of boxes against every predicate and the softmax of
its summed contrast logits is the pair's predicate distribution, which
:func:`stages.evaluation.vg_sgg.evaluate_vg_sgg` ranks (graph constraint: the
best predicate per pair; without: every pair × predicate).

Text tables cover the split's object classes × predicates: 150 × 50 for VG150
at the ``dual`` level (15,000 texts, encoded once). A ``triple`` classifier
only has texts for the class pairs it was built with, and refuses others.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from model.relclip.classifier import RelCLIPClassifier, RelationSet, embed_samples
from model.relclip.clip_encoder import ClipEncoder
from model.relclip.data import RelationSample
from stages.evaluation.vg_files import VGSceneGraphs
from stages.evaluation.vg_sgg import SceneGraphPrediction


def vg_samples(graphs: VGSceneGraphs, image_root: Path | str) -> list[RelationSample]:
    """One sample per ground-truth relation of ``graphs`` (images as ``<image_root>/<image_id>.jpg``)."""
    samples = []
    for image in graphs.images:
        path = Path(image_root) / image.file_name
        for s, o, p in image.relations.tolist():
            samples.append(RelationSample(path, tuple(image.boxes[s].tolist()), tuple(image.boxes[o].tolist()),
                                          graphs.object_classes[image.labels[s]],
                                          graphs.object_classes[image.labels[o]], graphs.predicates[p]))
    return samples


def vg_relation_set(encoder: ClipEncoder, graphs: VGSceneGraphs, image_root: Path | str) -> RelationSet:
    """Training data over the split's full vocabularies, so class and predicate indices match the evaluator's."""
    return embed_samples(encoder, vg_samples(graphs, image_root), graphs.predicates, graphs.object_classes)


@torch.no_grad()
def predcls_predictions(classifier: RelCLIPClassifier, encoder: ClipEncoder, graphs: VGSceneGraphs,
                        image_root: Path | str) -> dict[str, SceneGraphPrediction]:
    """PredCls predictions for every image of ``graphs``, keyed by file name."""
    classifier.eval()
    predictions = {}
    for image in graphs.images:
        n = len(image.boxes)
        pairs = np.asarray([(s, o) for s in range(n) for o in range(n) if s != o], dtype=np.int64).reshape(-1, 2)
        if not len(pairs):
            continue
        path = Path(image_root) / image.file_name
        names = [graphs.object_classes[label] for label in image.labels]
        # The predicate of a query sample is irrelevant; any vocabulary entry keeps embed_samples' lookup valid.
        queries = [RelationSample(path, tuple(image.boxes[s].tolist()), tuple(image.boxes[o].tolist()), names[s],
                                  names[o], graphs.predicates[0]) for s, o in pairs.tolist()]
        data = embed_samples(encoder, queries, graphs.predicates, graphs.object_classes)
        scores = torch.softmax(classifier.scores(data.features), dim=1).numpy()
        predictions[image.file_name] = SceneGraphPrediction.for_predcls(image, pairs, scores)
    return predictions
