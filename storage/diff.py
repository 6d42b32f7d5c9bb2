"""``relfactory diff``: what changed between two runs' relations.

A relation is identified by (image, subject box, object box, predicate): two runs
over the same dataset share box ids, so this compares e.g. BLIP against oracle
captions, or η 0.2 against η 0.25, label by label. Confidence changes of the
relations both runs keep are summarised separately from additions and removals.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from storage.run_reader import InspectionError, RunReader

RelationKey = tuple[int, int, int, str]  # image_id, subject_id, object_id, predicate


@dataclass
class RunDiff:
    run_a: str
    run_b: str
    stage: str
    relations_a: int
    relations_b: int
    added: dict[RelationKey, float]  # in B only, with B's confidence
    removed: dict[RelationKey, float]  # in A only, with A's confidence
    confidence_changes: dict[RelationKey, tuple[float, float]]  # in both, confidence A -> B where it differs
    images_only_a: list[int] = field(default_factory=list)
    images_only_b: list[int] = field(default_factory=list)
    names: dict[int, dict[int, str]] = field(default_factory=dict)  # image -> object id -> category

    def by_image(self) -> dict[int, tuple[int, int]]:
        counts: dict[int, list[int]] = defaultdict(lambda: [0, 0])
        for key in self.added:
            counts[key[0]][0] += 1
        for key in self.removed:
            counts[key[0]][1] += 1
        return {image: (a, r) for image, (a, r) in sorted(counts.items())}

    def by_predicate(self) -> dict[str, tuple[int, int]]:
        added = Counter(key[3] for key in self.added)
        removed = Counter(key[3] for key in self.removed)
        return {p: (added[p], removed[p]) for p in sorted(set(added) | set(removed),
                                                          key=lambda p: (-(added[p] + removed[p]), p))}

    def describe(self, key: RelationKey, confidence: float) -> str:
        image, subject, obj, predicate = key
        names = self.names.get(image, {})
        return (f"image {image}: {names.get(subject, '?')} {subject} --{predicate}--> "
                f"{names.get(obj, '?')} {obj}  ({confidence:.2f})")

    def as_json(self) -> dict[str, Any]:
        def rel(key: RelationKey, confidence: float) -> dict[str, Any]:
            return {"image_id": key[0], "subject_id": key[1], "object_id": key[2], "predicate": key[3],
                    "confidence": confidence}

        return {
            "run_a": self.run_a, "run_b": self.run_b, "stage": self.stage,
            "relations_a": self.relations_a, "relations_b": self.relations_b,
            "added": [rel(k, c) for k, c in sorted(self.added.items())],
            "removed": [rel(k, c) for k, c in sorted(self.removed.items())],
            "confidence_changes": [dict(rel(k, b), confidence_a=a) for k, (a, b) in sorted(self.confidence_changes.items())],
            "by_image": {str(i): {"added": a, "removed": r} for i, (a, r) in self.by_image().items()},
            "by_predicate": {p: {"added": a, "removed": r} for p, (a, r) in self.by_predicate().items()},
            "images_only_a": self.images_only_a, "images_only_b": self.images_only_b,
        }


def relations_of(reader: RunReader, stage: str) -> tuple[dict[RelationKey, float], set[int]]:
    """Every relation of a run's stage with its confidence, and the images the stage has rows for."""
    relations: dict[RelationKey, float] = {}
    images: set[int] = set()
    for row in reader.rows(stage, columns=["image_id", "relationships"]):
        images.add(row["image_id"])
        for rel in row["relationships"] or []:
            key = (row["image_id"], rel["subject_id"], rel["object_id"], rel["predicate"])
            relations[key] = max(rel["confidence"], relations.get(key, float("-inf")))
    return relations, images


def diff_runs(run_a: Path, run_b: Path, stage: str = "shard") -> RunDiff:
    if stage not in ("tag", "shard"):
        raise InspectionError(f"diff compares the relations of the tag or shard stage, not {stage!r}")
    reader_a, reader_b = RunReader(run_a), RunReader(run_b)
    for reader in (reader_a, reader_b):
        if not reader.has_stage(stage):
            raise InspectionError(f"run {reader.run_dir} has no {stage} stage to compare")
    rel_a, images_a = relations_of(reader_a, stage)
    rel_b, images_b = relations_of(reader_b, stage)
    added = {k: c for k, c in rel_b.items() if k not in rel_a}
    removed = {k: c for k, c in rel_a.items() if k not in rel_b}
    changed = {k: (rel_a[k], rel_b[k]) for k in rel_a.keys() & rel_b.keys() if rel_a[k] != rel_b[k]}
    touched = {k[0] for k in (*added, *removed)}
    names: dict[int, dict[int, str]] = {}
    for reader in (reader_a, reader_b):
        missing = touched - set(names)
        if not missing:
            break
        for row in reader.rows("ingest", columns=["image_id", "objects"], image_ids=missing):
            names[row["image_id"]] = {o["object_id"]: o["category"] for o in row["objects"] or []}
    # Two copies of one run share its name: tell them apart by folder.
    label_a, label_b = ((reader_a.name, reader_b.name) if reader_a.name != reader_b.name
                        else (str(reader_a.run_dir), str(reader_b.run_dir)))
    return RunDiff(label_a, label_b, stage, len(rel_a), len(rel_b), added, removed, changed,
                   sorted(images_a - images_b), sorted(images_b - images_a), names)


def format_diff(diff: RunDiff, examples: int = 5, top: int = 15) -> str:
    lines = [f"diff {diff.run_a} -> {diff.run_b} ({diff.stage} relations)",
             f"relations: {diff.relations_a} -> {diff.relations_b}   added {len(diff.added)}   "
             f"removed {len(diff.removed)}   confidence changed {len(diff.confidence_changes)}"]
    if diff.images_only_a or diff.images_only_b:
        lines.append(f"images with rows only in {diff.run_a}: {len(diff.images_only_a)}; "
                     f"only in {diff.run_b}: {len(diff.images_only_b)}")
    by_image = diff.by_image()
    if not by_image:
        lines.append("no relation was added or removed")
        return "\n".join(lines)
    lines.append(f"images changed: {len(by_image)}  (image: +added -removed, most changed first)")
    ranked = sorted(by_image.items(), key=lambda kv: (-(kv[1][0] + kv[1][1]), kv[0]))
    for image, (a, r) in ranked[:top]:
        lines.append(f"  {image}: +{a} -{r}")
    lines.append("per predicate (+added -removed):")
    for predicate, (a, r) in list(diff.by_predicate().items())[:top]:
        lines.append(f"  {predicate}: +{a} -{r}")
    for title, relations in (("added", diff.added), ("removed", diff.removed)):
        if relations:
            lines.append(f"examples {title}:")
            ranked_rel = sorted(relations.items(), key=lambda kv: (-kv[1], kv[0]))
            lines.extend("  " + diff.describe(k, c) for k, c in ranked_rel[:examples])
    return "\n".join(lines)


def write_diff_json(diff: RunDiff, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(diff.as_json(), indent=1))
