"""The rule baselines of Zhong et al. (2021), as RLIPv2 reports them, and the all-texts variant.

``greedy`` is the paper's rule (RLIPv2 Sec. 4.2.2, Tab. 5): each subject-object
box pair whose classes match a caption's relation gets *one* of the relation
texts proposed for it, chosen at random. The choice is seeded by ``tag.seed``,
the image and the pair, so a re-run gives the same labels and adding an image
does not reshuffle the others.

``greedy-all`` assigns every proposed text to every such pair: "a man riding a
horse" labels every person-horse pair "ride".

Both give confidence 1.0 (they have no notion of doubt, so η does nothing for
them) and look at no pixels. ``require_overlap`` keeps only pairs whose boxes
touch (IoU > 0), a cheap proxy for the two boxes interacting.
"""

from __future__ import annotations

import random
from pathlib import Path

from pipeline.config import TagConfig
from pipeline.contracts import ErrorRow, Row
from stages.taggers.base import ScoredRelation, Tagger, TaggerResult, boxes_by_id
from stages.taggers.geometry import box_iou

__all__ = ["GreedyAllTagger", "GreedyTagger", "box_iou"]


class GreedyAllTagger(Tagger):
    name = "greedy-all"
    needs_pixels = False

    def __init__(self, tag_cfg: TagConfig) -> None:
        self.require_overlap = tag_cfg.require_overlap
        self.seed = tag_cfg.seed

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
                for relation in self.relations_for(image_id, pair):
                    result.scores.append(ScoredRelation(image_id, pair["subject_id"], pair["object_id"], relation, 1.0))
        return result

    def relations_for(self, image_id: int, pair: Row) -> list[str]:
        """The relation texts this rule puts on ``pair``: all of those proposed for it."""
        return sorted({proposal["relation"] for proposal in pair["proposals"]})


class GreedyTagger(GreedyAllTagger):
    name = "greedy"

    def relations_for(self, image_id: int, pair: Row) -> list[str]:
        texts = super().relations_for(image_id, pair)
        if len(texts) <= 1:
            return texts
        # A string seed is hashed with SHA-512 by ``random``: stable across processes and Python runs.
        rng = random.Random(f"greedy:{self.seed}:{image_id}:{pair['subject_id']}:{pair['object_id']}")
        return [rng.choice(texts)]
