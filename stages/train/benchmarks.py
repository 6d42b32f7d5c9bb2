"""Downstream benchmarks as label spaces and training sources.

A :class:`LabelSpace` is what the text-classifying model needs to work on a
benchmark: the entity and relation texts, and the benchmark's id for each
(HICO-DET: COCO-91 object ids and verbs 1..117; V-COCO: COCO-91 ids and
QPIC's 29 verbs 0..28; Open Images: the conversion's own indices). The same
space maps ground truth to text for fine-tuning and model outputs back to ids
for evaluation.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from storage.downstream import (
    COCO_CATEGORIES,
    COCO_PERSON_ID,
    VCOCO_VERBS,
    RelationImage,
    few_shot_subset,
    load_hico_meta,
    read_hico_qpic,
    read_oi_rlipv2,
    read_vcoco_qpic,
)

from .records import Record, Relation
from .sources import SourceError

BENCHMARKS = ("hico-det", "v-coco", "oi-sgg")


@dataclass(frozen=True)
class LabelSpace:
    entity_texts: tuple[str, ...]
    entity_ids: tuple[int, ...]
    relation_texts: tuple[str, ...]
    relation_ids: tuple[int, ...]
    # HOI benchmarks: the entity index every subject is (the person), for the qpic protocol.
    subject_index: int | None = None
    # (entity index, relation index) pairs the benchmark defines as classes; None = all.
    defined_pairs: frozenset[tuple[int, int]] | None = None

    def defined_mask(self) -> np.ndarray | None:
        """``mask[e, j]``: object text e with relation text j is a benchmark class (None: every pair is)."""
        if self.defined_pairs is None:
            return None
        mask = np.zeros((len(self.entity_texts), len(self.relation_texts)), dtype=bool)
        for entity, relation in self.defined_pairs:
            mask[entity, relation] = True
        return mask

    def entity_name(self, category_id: int) -> str:
        return self.entity_texts[self.entity_ids.index(int(category_id))]

    def relation_name(self, predicate_id: int) -> str:
        return self.relation_texts[self.relation_ids.index(int(predicate_id))]


def _coco_entities() -> tuple[tuple[str, ...], tuple[int, ...]]:
    return tuple(name for _, name in COCO_CATEGORIES), tuple(cid for cid, _ in COCO_CATEGORIES)


def hico_label_space(meta_path: Path) -> LabelSpace:
    """COCO's 80 objects (in id order, QPIC's ``valid_obj_ids``) and the 117 verbs; 600 (object, verb) classes."""
    meta = load_hico_meta(meta_path)
    verbs = meta.verb_texts()
    verb_ids = tuple(sorted(verbs))
    names, ids = _coco_entities()
    lookup = meta.hoi_lookup()  # [coco id, verb id] -> HOI id or -1
    defined = frozenset((e, j) for e, coco_id in enumerate(ids) for j, verb_id in enumerate(verb_ids)
                        if lookup[coco_id, verb_id] >= 0)
    return LabelSpace(names, ids, tuple(verbs[v] for v in verb_ids), verb_ids,
                      subject_index=ids.index(COCO_PERSON_ID), defined_pairs=defined)


def vcoco_label_space() -> LabelSpace:
    names, ids = _coco_entities()
    return LabelSpace(names, ids, tuple(v.replace("_", " ") for v in VCOCO_VERBS), tuple(range(len(VCOCO_VERBS))),
                      subject_index=ids.index(COCO_PERSON_ID))


def oi_label_space(object_names: Path, predicate_names: Path) -> LabelSpace:
    """Open Images from two JSON lists of names, in the conversion's id order."""
    objects = [str(n) for n in json.loads(Path(object_names).read_text())]
    predicates = [str(n) for n in json.loads(Path(predicate_names).read_text())]
    return LabelSpace(tuple(objects), tuple(range(len(objects))), tuple(predicates), tuple(range(len(predicates))))


def label_space(benchmark: str, *, meta: Path | None = None, object_names: Path | None = None,
                predicate_names: Path | None = None) -> LabelSpace:
    if benchmark == "hico-det":
        if meta is None:
            raise SourceError("hico-det needs its metadata file (hico_meta.json) for the verb names")
        return hico_label_space(meta)
    if benchmark == "v-coco":
        return vcoco_label_space()
    if benchmark == "oi-sgg":
        if object_names is None or predicate_names is None:
            raise SourceError("oi-sgg needs the object and predicate name lists (JSON)")
        return oi_label_space(object_names, predicate_names)
    raise SourceError(f"unknown benchmark {benchmark!r}; choose from {BENCHMARKS}")


def read_relation_images(benchmark: str, annotations: Path) -> list[RelationImage]:
    """The benchmark's QPIC-style file; images with relations pointing at no box are dropped (as QPIC does)."""
    reader = {"hico-det": read_hico_qpic, "v-coco": read_vcoco_qpic, "oi-sgg": read_oi_rlipv2}.get(benchmark)
    if reader is None:
        raise SourceError(f"unknown benchmark {benchmark!r}; choose from {BENCHMARKS}")
    return reader(annotations, on_invalid="drop")


def relation_image_record(image: RelationImage, space: LabelSpace, image_root: Path, dataset: str,
                          index: int) -> Record:
    """A ground-truth image as a training record; a missing object (V-COCO) is object index -1."""
    relations = [Relation(int(s), int(o), space.relation_name(int(p))) for s, o, p in image.relations.tolist()]
    image_id = image.image_id if image.image_id is not None else index
    return Record(image_id=int(image_id), dataset=dataset, file_name=image.file_name, image_root=Path(image_root),
                  boxes=[tuple(map(float, b)) for b in image.boxes.tolist()],
                  names=[space.entity_name(int(c)) for c in image.labels.tolist()], relations=relations)


class DownstreamSource:
    """A benchmark's training split (optionally a reproducible few-shot subset) for fine-tuning."""

    def __init__(self, benchmark: str, annotations: Path, images: Path, space: LabelSpace, *,
                 few_shot: float | None = None, seed: int = 0, name: str | None = None) -> None:
        self.name = name or benchmark
        images_list: Sequence[RelationImage] = read_relation_images(benchmark, annotations)
        if few_shot is not None:
            images_list = few_shot_subset(images_list, few_shot, seed)
        self.records = [relation_image_record(img, space, images, benchmark, i) for i, img in enumerate(images_list)
                        if len(img.relations)]
        if not self.records:
            raise SourceError(f"{Path(annotations).name}: no image with relations")
        self.part_sizes = [len(self.records)]
        self.entity_counts: Counter = Counter(n for r in self.records for n in r.names)
        self.relation_counts: Counter = Counter(rel.predicate for r in self.records for rel in r.relations)
        # Add-one counts: Label Sequence Extension may draw any text of the benchmark's
        # label space, which is how a whole small label space (HICO-DET's 80 objects,
        # 117 verbs) ends up in every batch's sequence.
        self.entity_counts.update(space.entity_texts)
        self.relation_counts.update(space.relation_texts)

    def get(self, part: int, row: int) -> Record:
        if part != 0:
            raise IndexError(f"{self.name} has a single part")
        return self.records[row]

    def __len__(self) -> int:
        return len(self.records)
