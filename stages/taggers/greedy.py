"""The rule-based baseline tagger of Zhong et al. (2021).

Every relation text a caption proposed for a class pair is assigned, with
confidence 1.0, to every box pair of those classes: no pixels are looked at, so
"a man riding a horse" labels *every* person-horse pair in the image "ride".
``require_overlap`` keeps only pairs whose boxes touch (IoU > 0), a cheap
proxy for the two boxes interacting.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.config import TagConfig
from pipeline.contracts import ErrorRow, Row
from stages.taggers.base import ScoredRelation, Tagger, TaggerResult, boxes_by_id


class GreedyTagger(Tagger):
    name = "greedy"
    needs_pixels = False

    def __init__(self, tag_cfg: TagConfig) -> None:
        self.require_overlap = tag_cfg.require_overlap

    def tag(self, chunks: list[Row], images: dict[int, Row], image_root: Path) -> TaggerResult:
        result = TaggerResult()
        boxes = {image_id: boxes_by_id(image) for image_id, image in images.items()}
        failed: set[int] = set()
        for chunk in chunks:
            image_id = chunk["image_id"]
            if image_id in failed:
                continue
            for pair in chunk["pairs"]:
                if self.require_overlap:
                    subject = boxes.get(image_id, {}).get(pair["subject_id"])
                    obj = boxes.get(image_id, {}).get(pair["object_id"])
                    if subject is None or obj is None:
                        failed.add(image_id)
                        result.errors.append(ErrorRow(
                            image_id, "tag", "unknown_object",
                            f"pair ({pair['subject_id']}, {pair['object_id']}) names a box not in the image",
                        ))
                        break
                    if box_iou(subject, obj) <= 0.0:
                        continue
                for proposal in pair["proposals"]:
                    result.scores.append(ScoredRelation(
                        image_id, pair["subject_id"], pair["object_id"], proposal["relation"], 1.0
                    ))
        return result


def box_iou(a: Row, b: Row) -> float:
    """Intersection over union of two x, y, w, h boxes (0.0 for empty boxes)."""
    ix = min(a["x"] + a["w"], b["x"] + b["w"]) - max(a["x"], b["x"])
    iy = min(a["y"] + a["h"], b["y"] + b["h"]) - max(a["y"], b["y"])
    if ix <= 0 or iy <= 0:
        return 0.0
    inter = ix * iy
    union = a["w"] * a["h"] + b["w"] * b["h"] - inter
    return inter / union if union > 0 else 0.0
