"""The ``rtagger`` backend: RLIPv2's Relation Tagger scores every candidate pair.

For each image the R-Tagger gets the image, every candidate pair's two
ground-truth boxes with their class names, and the image's relation texts T,
and returns a confidence for every (pair, text). The stage applies η.

The model comes from ``tag.checkpoint`` (a relfactory checkpoint; convert
official weights with ``python -m model.convert_official``), is loaded once per
process on first use, and runs on ``tag.device`` (``auto``: CUDA when
available). ``tag.batch_size`` images share an encoder pass; each image is
encoded once however many chunks of pairs it has.

Entity classification (needed for the paper's confidence) is over the
checkpoint's entity vocabulary (``metadata["entity_labels"]``, e.g. the 80
COCO classes for the official tagger) plus any class name of the image that
the vocabulary lacks.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from pipeline.config import TagConfig
from pipeline.contracts import ErrorRow, Row
from pipeline.images import BadImage, load_image
from stages.taggers.base import ScoredRelation, Tagger, TaggerResult, boxes_by_id

if TYPE_CHECKING:
    from model.tagging import RTaggerPredictor, TaggingImage

log = logging.getLogger(__name__)

DEFAULT_MIN_SIZE = 800
DEFAULT_MAX_SIZE = 1333


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


@lru_cache(maxsize=2)
def _load_predictor(checkpoint: str, mtime_ns: int, device: str, confidence: str,
                    images_per_pass: int) -> tuple["RTaggerPredictor", dict[str, Any]]:
    """One predictor per (file version, device, settings) per process."""
    from model.checkpoint import load_checkpoint
    from model.deformable import enable_fast_kernels
    from model.rtagger import RTagger as RTaggerModel
    from model.tagging import RTaggerPredictor

    model, metadata = load_checkpoint(checkpoint, map_location="cpu")
    if not isinstance(model, RTaggerModel):
        raise ValueError(f"{checkpoint} holds a {type(model).__name__}, not an R-Tagger checkpoint")
    model.to(device)
    if device.startswith("cuda"):
        enable_fast_kernels(model, "cuda")
    log.info("loaded R-Tagger from %s on %s", checkpoint, device)
    predictor = RTaggerPredictor(model, confidence=confidence, images_per_pass=images_per_pass)  # type: ignore[arg-type]
    return predictor, metadata


class RTagger(Tagger):
    name = "rtagger"
    needs_pixels = True

    def __init__(self, tag_cfg: TagConfig) -> None:
        if tag_cfg.checkpoint is None:
            raise ValueError("the rtagger backend needs tag.checkpoint")
        self.checkpoint = Path(tag_cfg.checkpoint)
        self.confidence = tag_cfg.confidence
        self.batch_size = tag_cfg.batch_size
        self.device = resolve_device(tag_cfg.device)

    def _predictor(self) -> tuple["RTaggerPredictor", dict[str, Any]]:
        if not self.checkpoint.is_file():
            # A missing model is an infrastructure fault, not bad input: raise.
            raise FileNotFoundError(f"R-Tagger checkpoint not found: {self.checkpoint}")
        return _load_predictor(str(self.checkpoint.resolve()), self.checkpoint.stat().st_mtime_ns, self.device,
                               self.confidence, self.batch_size)

    def tag(self, chunks: list[Row], images: dict[int, Row], image_root: Path) -> TaggerResult:
        from model.preprocess import preprocess_image
        from model.tagging import TaggingImage

        predictor, metadata = self._predictor()
        vocabulary = [str(name) for name in metadata.get("entity_labels", [])]
        min_size = int(metadata.get("image_min_size", DEFAULT_MIN_SIZE))
        max_size = int(metadata.get("image_max_size", DEFAULT_MAX_SIZE))

        result = TaggerResult()
        requests: list[TaggingImage] = []
        pair_lists: list[list[tuple[int, int]]] = []
        for image_id, image_chunks in _group_by_image(chunks).items():
            row = images[image_id]
            try:
                pixels = load_image(image_root, row["file_name"])
            except BadImage as exc:
                result.errors.append(ErrorRow(image_id, "tag", exc.reason, exc.detail))
                continue
            request = _request(image_id, row, image_chunks, pixels.size, vocabulary)
            if isinstance(request, ErrorRow):
                result.errors.append(request)
                continue
            tagging_image, pairs = request
            tagging_image.pixels = preprocess_image(pixels, min_size, max_size)
            requests.append(tagging_image)
            pair_lists.append(pairs)

        for request, pairs, scores in zip(requests, pair_lists, predictor.predict(requests)):
            for p, (subject_id, object_id) in enumerate(pairs):
                for r, text in enumerate(request.relation_texts):
                    result.scores.append(ScoredRelation(int(request.key), subject_id, object_id, text,
                                                        float(scores[p, r])))
        return result


def _group_by_image(chunks: list[Row]) -> dict[int, list[Row]]:
    grouped: dict[int, list[Row]] = {}
    for chunk in chunks:
        grouped.setdefault(chunk["image_id"], []).append(chunk)
    return grouped


def _request(image_id: int, row: Row, chunks: list[Row], pixel_size: tuple[int, int],
             vocabulary: list[str]) -> "tuple[TaggingImage, list[tuple[int, int]]] | ErrorRow":
    """The model request for one image, or an ErrorRow when its pairs name unknown boxes."""
    from model.tagging import TaggingImage

    objects = boxes_by_id(row)
    width = float(row.get("width") or pixel_size[0])
    height = float(row.get("height") or pixel_size[1])
    texts = sorted({text for chunk in chunks for text in chunk["relation_texts"]})
    pairs: list[tuple[int, int]] = []
    seen: set[tuple[int, int]] = set()
    for chunk in chunks:
        for pair in chunk["pairs"]:
            key = (int(pair["subject_id"]), int(pair["object_id"]))
            if key[0] not in objects or key[1] not in objects:
                return ErrorRow(image_id, "tag", "unknown_object",
                                f"pair {key} names a box not among the image's objects")
            if key not in seen:
                seen.add(key)
                pairs.append(key)
    # The checkpoint's vocabulary first (its order is what the model saw), then
    # the image's other classes in sorted order, for a deterministic label set.
    extra = sorted({str(obj["category"]) for obj in objects.values()} - set(vocabulary))
    labels = vocabulary + extra
    index = {name: i for i, name in enumerate(labels)}

    def box(object_id: int) -> list[float]:
        obj = objects[object_id]
        x1 = min(max(float(obj["x"]), 0.0), width)
        y1 = min(max(float(obj["y"]), 0.0), height)
        x2 = min(max(float(obj["x"]) + float(obj["w"]), 0.0), width)
        y2 = min(max(float(obj["y"]) + float(obj["h"]), 0.0), height)
        return [(x1 + x2) / 2 / width, (y1 + y2) / 2 / height, (x2 - x1) / width, (y2 - y1) / height]

    request = TaggingImage(
        key=image_id,
        pixels=torch.empty(0),
        entity_labels=labels,
        relation_texts=texts,
        sub_boxes=torch.tensor([box(s) for s, _ in pairs], dtype=torch.float32).reshape(-1, 4),
        obj_boxes=torch.tensor([box(o) for _, o in pairs], dtype=torch.float32).reshape(-1, 4),
        sub_labels=torch.tensor([index[str(objects[s]["category"])] for s, _ in pairs], dtype=torch.long),
        obj_labels=torch.tensor([index[str(objects[o]["category"])] for _, o in pairs], dtype=torch.long),
    )
    return request, pairs
