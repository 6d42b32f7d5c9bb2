"""Export a run's shards to the official RLIPv2 pseudo-label JSON.

Format (a JSON list, Visual-Genome style): one entry per image
``{image_id, dataset, data_split, objects: [{object_id, x, y, w, h, names}],
relationships: [{relationship_id, predicate, subject_id, object_id, confidence}]}``
with xywh pixel boxes. Object ids are renumbered from the dataset's offset
(COCO 10,000,000; Objects365 20,000,000; anything else 30,000,000) as the official
files do, and ``names`` is a one-element list as in Visual Genome. The file is
written entry by entry, so memory stays bounded by one shard.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pyarrow.parquet as pq

from storage.atomic import atomic_write
from storage.parts import check_schema
from storage.schemas import SHARD

OBJECT_ID_OFFSETS = {"coco": 10_000_000, "objects365": 20_000_000}
OTHER_OFFSET = 30_000_000


def shard_files(run_dir: Path) -> list[Path]:
    return sorted((Path(run_dir) / "shard").glob("part-*.parquet"))


def iter_shard_rows(run_dir: Path) -> Iterator[dict]:
    for path in shard_files(run_dir):
        check_schema(path, SHARD)
        for batch in pq.ParquetFile(path).iter_batches(batch_size=256):
            yield from batch.to_pylist()


def _write_entries(rows: Iterator[dict], fh: IO[str]) -> int:
    counters: dict[str, int] = {}
    relationship_counter = 0
    fh.write("[")
    count = 0
    for row in rows:
        offset = OBJECT_ID_OFFSETS.get(row["dataset"], OTHER_OFFSET)
        new_ids = {}
        objects = []
        for obj in row["objects"]:
            new_ids[obj["object_id"]] = offset + counters.get(row["dataset"], 0)
            counters[row["dataset"]] = counters.get(row["dataset"], 0) + 1
            objects.append({"object_id": new_ids[obj["object_id"]], "x": obj["x"], "y": obj["y"],
                            "w": obj["w"], "h": obj["h"], "names": [obj["names"]]})
        relationships = []
        for rel in row["relationships"]:
            relationships.append({"relationship_id": relationship_counter, "predicate": rel["predicate"],
                                  "subject_id": new_ids[rel["subject_id"]], "object_id": new_ids[rel["object_id"]],
                                  "confidence": rel["confidence"]})
            relationship_counter += 1
        entry = {"image_id": row["image_id"], "dataset": row["dataset"], "data_split": row["data_split"],
                 "objects": objects, "relationships": relationships}
        fh.write(("," if count else "") + "\n" + json.dumps(entry))
        count += 1
    fh.write("\n]\n")
    return count


def export_rlipv2_json(run_dir: Path, destination: Path) -> int:
    """Write the run's shards as RLIPv2 JSON; returns the number of images written."""
    if not shard_files(run_dir):
        raise FileNotFoundError(f"run {Path(run_dir).name!r} has no shard output yet")
    written = 0

    def write(tmp: Path) -> None:
        nonlocal written
        with tmp.open("w") as fh:
            written = _write_entries(iter_shard_rows(run_dir), fh)

    atomic_write(destination, write)
    return written
