"""Run a checkpoint over a downstream benchmark and score it with the standard metrics.

HICO-DET (mAP Full/Rare/Non-Rare), V-COCO (AP_role scenarios 1/2) and Open
Images v6 SGG (R@50, wmAP) come from :mod:`stages.evaluation`; this module
does the model side: read the ground truth, classify every image against the
benchmark's label texts, post-process to the top triplets in the benchmark's
id space, score, and write the result as JSON next to the checkpoint.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch

from model.checkpoint import load_checkpoint
from model.nested_tensor import nested_tensor_from_images
from pipeline.images import BadImage, load_image
from stages.evaluation import (
    EvalResult,
    ImagePredictions,
    evaluate_hico_det,
    evaluate_oi_sgg,
    evaluate_vcoco,
    format_table,
    write_result,
)
from storage.downstream import load_hico_meta, read_hico_qpic, read_oi_rlipv2, read_vcoco_official

from .benchmarks import BENCHMARKS, LabelSpace, hico_label_space, oi_label_space, vcoco_label_space
from .distributed import resolve_device
from .eval_inputs import check_image_folder, check_some_images_read
from .inference import PROTOCOLS, PairPredictions, PredictedTriplets, pair_predictions
from .predictions_file import read_predictions, write_predictions
from .sources import SourceError
from .transforms import Annotated, resize, to_tensor

log = logging.getLogger("relfactory.evaluate")


@dataclass
class Benchmark:
    name: str
    space: LabelSpace
    file_names: list[str]  # images to run, in ground-truth order
    score: Callable[[Mapping[str, ImagePredictions]], EvalResult]


def load_benchmark(benchmark: str, annotations: Path, *, meta: Path | None = None,
                   coco_instances: Path | None = None, object_names: Path | None = None,
                   predicate_names: Path | None = None, max_images: int | None = None) -> Benchmark:
    """Ground truth, label space and scorer of a benchmark (the first ``max_images`` images when given)."""
    if benchmark == "hico-det":
        if meta is None:
            raise SourceError("hico-det evaluation needs --meta (hico_meta.json)")
        hico_meta = load_hico_meta(meta)
        gt = read_hico_qpic(annotations)[:max_images]
        return Benchmark(benchmark, hico_label_space(meta), [g.file_name for g in gt],
                         lambda preds: evaluate_hico_det(preds, gt, hico_meta))
    if benchmark == "v-coco":
        if coco_instances is None:
            raise SourceError("v-coco evaluation needs --coco-instances (the COCO instances JSON of its images)")
        ids = _vcoco_ids_with_boxes(annotations, coco_instances)
        vgt = read_vcoco_official(annotations, coco_instances, image_ids=ids[:max_images])
        return Benchmark(benchmark, vcoco_label_space(), [g.file_name for g in vgt],
                         lambda preds: evaluate_vcoco(preds, vgt))
    if benchmark == "oi-sgg":
        if object_names is None or predicate_names is None:
            raise SourceError("oi-sgg evaluation needs --object-names and --predicate-names (JSON lists)")
        ogt = read_oi_rlipv2(annotations)[:max_images]
        return Benchmark(benchmark, oi_label_space(object_names, predicate_names), [g.file_name for g in ogt],
                         lambda preds: evaluate_oi_sgg(preds, ogt))
    raise SourceError(f"unknown benchmark {benchmark!r}; choose from {BENCHMARKS}")


def _vcoco_ids_with_boxes(vcoco_json: Path, coco_instances: Path) -> list[int]:
    """V-COCO images that the instances file describes (a subset of COCO may be all there is)."""
    raw = json.loads(Path(vcoco_json).read_text())
    wanted = sorted({int(i) for i in raw[0]["image_id"]})
    known = {int(img["id"]) for img in json.loads(Path(coco_instances).read_text())["images"]}
    ids = [i for i in wanted if i in known]
    if len(ids) < len(wanted):
        log.warning("v-coco: %d of %d images are not in %s and are not evaluated", len(wanted) - len(ids),
                    len(wanted), Path(coco_instances).name)
    return ids


# Triplets kept per image under the qpic protocol: HICO-DET's evaluator keeps 100
# (``max_hois``); QPIC's V-COCO export keeps every (query, verb).
QPIC_TOP_K: dict[str, int | None] = {"hico-det": 100, "v-coco": None, "oi-sgg": 100}
# relfactory's own protocol keeps the 100 best over all relation texts.
ALL_ENTITIES_TOP_K = 100


def benchmark_protocol(benchmark: str, requested: str | None = None) -> str:
    """The post-processing protocol: QPIC/RLIPv2's for the HOI benchmarks unless ``requested`` says otherwise.

    Open Images relations have subjects of any class, so only ``all-entities`` applies there.
    """
    protocol = requested or ("all-entities" if benchmark == "oi-sgg" else "qpic")
    if protocol not in PROTOCOLS:
        raise SourceError(f"unknown protocol {protocol!r}; choose from {PROTOCOLS}")
    if protocol == "qpic" and benchmark == "oi-sgg":
        raise SourceError("the qpic protocol fixes subjects to person; oi-sgg needs --protocol all-entities")
    return protocol


def to_benchmark_predictions(pairs: Mapping[str, PairPredictions], bench: Benchmark,
                             protocol: str) -> dict[str, ImagePredictions]:
    """Per image: the protocol's triplets (qpic: undefined pairs dropped first, then the cut), in benchmark ids."""
    if protocol == "qpic":
        defined, top_k = bench.space.defined_mask(), QPIC_TOP_K[bench.name]
    else:
        defined, top_k = None, ALL_ENTITIES_TOP_K
    return {name: to_image_predictions(p.triplets(defined, top_k), bench.space) for name, p in pairs.items()}


def to_image_predictions(pred: PredictedTriplets, space: LabelSpace) -> ImagePredictions:
    entity_ids = np.asarray(space.entity_ids, dtype=np.int64)
    relation_ids = np.asarray(space.relation_ids, dtype=np.int64)
    return ImagePredictions(pred.subject_boxes, pred.object_boxes, entity_ids[pred.subject_labels],
                            entity_ids[pred.object_labels], relation_ids[pred.predicates], pred.scores)


@torch.no_grad()
def predict(model: torch.nn.Module, bench: Benchmark, images: Path, *, protocol: str = "qpic", batch_size: int = 2,
            size: int = 800, max_size: int = 1333,
            device: torch.device | None = None) -> tuple[dict[str, PairPredictions], list[str]]:
    """Per file name, every query as a scored pair (QPIC's form); and the files that could not be read."""
    device = device or torch.device("cpu")
    model.eval().to(device)
    entity_texts, relation_texts = list(bench.space.entity_texts), list(bench.space.relation_texts)
    labels = model.encode_labels([entity_texts], [relation_texts])  # encoded once, reused per batch
    predictions: dict[str, PairPredictions] = {}
    unreadable: list[str] = []
    for start in range(0, len(bench.file_names), batch_size):
        names, tensors, sizes = [], [], []
        for name in bench.file_names[start:start + batch_size]:
            try:
                image = load_image(images, name)
            except BadImage as exc:
                log.warning("%s: %s", name, exc)
                unreadable.append(name)
                continue
            out = resize(Annotated(image, np.zeros((0, 4), dtype=np.float32)), size, max_size)
            names.append(name)
            tensors.append(to_tensor(out.image))
            sizes.append(image.size)
        if not names:
            continue
        batch = nested_tensor_from_images(tensors).to(device)
        index = torch.zeros(len(names), dtype=torch.long)
        outputs = model(batch, labels.index_select(index).to(device))
        pairs = pair_predictions(outputs, sizes, protocol, bench.space.subject_index)  # type: ignore[arg-type]
        predictions.update(zip(names, pairs))
    return predictions, unreadable


def evaluate_checkpoint(checkpoint: Path, benchmark: str, annotations: Path, images: Path, *,
                        meta: Path | None = None, coco_instances: Path | None = None,
                        object_names: Path | None = None, predicate_names: Path | None = None,
                        max_images: int | None = None, batch_size: int = 2, size: int = 800, max_size: int = 1333,
                        device: str = "auto", protocol: str | None = None,
                        save_predictions: Path | None = None) -> tuple[EvalResult, Path]:
    """Score ``checkpoint`` on ``benchmark``; returns the result and the JSON written beside the checkpoint.

    ``save_predictions`` also writes the raw per-query predictions there in
    QPIC's format (:mod:`stages.train.predictions_file`).
    """
    check_image_folder(images)
    model, metadata = load_checkpoint(checkpoint)
    if model.config.variant == "rtagger":
        raise SourceError(f"{Path(checkpoint).name} is an R-Tagger: it tags given pairs and is not evaluated "
                          "on detection benchmarks")
    protocol = benchmark_protocol(benchmark, protocol)
    bench = load_benchmark(benchmark, annotations, meta=meta, coco_instances=coco_instances,
                           object_names=object_names, predicate_names=predicate_names, max_images=max_images)
    pairs, unreadable = predict(model, bench, images, protocol=protocol, batch_size=batch_size, size=size,
                                max_size=max_size, device=resolve_device(device))
    check_some_images_read(images, len(bench.file_names), unreadable)
    if save_predictions is not None:
        write_predictions(save_predictions, pairs, benchmark=benchmark, protocol=protocol)
    result = bench.score(to_benchmark_predictions(pairs, bench, protocol))
    result.counts["unreadable_images"] = len(unreadable)
    extra: dict[str, Any] = {"annotations": Path(annotations).name, "images_evaluated": len(bench.file_names),
                             "max_images": max_images, "size": size, "max_size": max_size, "protocol": protocol,
                             "checkpoint_metadata": metadata}
    if save_predictions is not None:
        extra["predictions_file"] = str(save_predictions)
    path = write_result(result, checkpoint, extra)
    return result, path


def evaluate_predictions(predictions_file: Path, benchmark: str, annotations: Path, *, meta: Path | None = None,
                         coco_instances: Path | None = None, object_names: Path | None = None,
                         predicate_names: Path | None = None, max_images: int | None = None,
                         protocol: str | None = None) -> tuple[EvalResult, Path]:
    """Score a QPIC-format predictions file (ours or another model's); the result is written beside it.

    The file's own ``protocol`` decides the per-image cut unless ``protocol``
    is given; a QPIC dump without one is read as ``qpic``.
    """
    bench = load_benchmark(benchmark, annotations, meta=meta, coco_instances=coco_instances,
                           object_names=object_names, predicate_names=predicate_names, max_images=max_images)
    pairs, file_protocol = read_predictions(predictions_file, bench.file_names, benchmark=benchmark)
    if max_images is not None:  # the file may cover the whole test set
        kept = set(bench.file_names)
        pairs = {name: p for name, p in pairs.items() if name in kept}
    protocol = benchmark_protocol(benchmark, protocol or file_protocol)
    result = bench.score(to_benchmark_predictions(pairs, bench, protocol))
    extra: dict[str, Any] = {"annotations": Path(annotations).name, "images_evaluated": len(bench.file_names),
                             "max_images": max_images, "protocol": protocol,
                             "predictions_file": Path(predictions_file).name}
    return result, write_result(result, predictions_file, extra)


def show(result: EvalResult) -> str:
    return format_table(result)
