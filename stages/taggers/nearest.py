"""``nearest``: a one-line geometric baseline, kept to measure others against.

For each proposal, each object box goes to the subject box it overlaps most
(highest IoU), else, when it overlaps none, to the subject whose centre is
nearest; confidence 1.0. No caption number, no doubt: the rule the pair
benchmark (bench/tagger_pairs.py) reports as its geometric reference.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

from pipeline.config import TagConfig
from pipeline.contracts import Row
from stages.taggers.base import ScoredRelation, Tagger, TaggerResult
from stages.taggers.geometry import box_iou, centre
from stages.taggers.proposals import proposals_per_image


class NearestTagger(Tagger):
    name = "nearest"
    needs_pixels = False

    def __init__(self, tag_cfg: TagConfig) -> None:
        del tag_cfg  # no options

    def tag(self, chunks: list[Row], images: dict[int, Row], image_root: Path) -> TaggerResult:
        result = TaggerResult()
        for found in proposals_per_image(chunks, images, result.errors):
            for proposal in found.proposals:
                subjects_of: dict[int, list[int]] = defaultdict(list)
                for subject_id, object_id in proposal.pairs:
                    subjects_of[object_id].append(subject_id)
                for object_id, subject_ids in subjects_of.items():
                    best = _nearest(found.boxes[object_id], subject_ids, found.boxes)
                    result.scores.append(ScoredRelation(found.image_id, best, object_id, proposal.relation, 1.0))
        return result


def _nearest(obj: Row, subject_ids: list[int], boxes: dict[int, Row]) -> int:
    overlaps = {s: box_iou(boxes[s], obj) for s in subject_ids}
    best = max(subject_ids, key=lambda s: (overlaps[s], -s))
    if overlaps[best] > 0:
        return best
    ox, oy = centre(obj)
    return min(subject_ids, key=lambda s: (math.dist(centre(boxes[s]), (ox, oy)), s))
