"""Export a run's shards to the official RLIPv2 pseudo-label JSON, as the official trainer reads it.

What the official code touches (JacobYuan7/RLIPv2: ``datasets/mixed_dataset.py``
``MixedRelDetection`` and the frequency helpers beside it, and ``datasets/coco.py``
``CocoRLIPDetection``, which read the file; the R-Tagger script
``generate_relations_using_verb_tagger.py``, which writes it), read field by field.
One JSON list, one object per image:

=============================  ========  ==================================================================
field                          type      how the official code uses it
=============================  ========  ==================================================================
``image_id``                   int       COCO: image file ``str(image_id).zfill(12) + ".jpg"``; Objects365:
                                         key ``str(image_id)`` of ``image_id_to_filepath.json``
``dataset``                    str       picks the image folder: ``"coco2017"`` (COCO) or ``"o365"``
                                         (Objects365); ``"hico"``; absent = Visual Genome (any other
                                         value leaves the reader without an image)
``data_split``                 str       COCO only: sub-folder joined to ``--coco_path``, so ``"train2017"``
                                         / ``"val2017"`` (absent = ``train2017``); the Objects365 writer puts
                                         ``"train"`` / ``"val"`` (unused by the reader). ``CocoRLIPDetection``
                                         ignores it and opens ``<its folder>/<zfill(12)>.jpg``
``objects[].object_id``        int       relationships refer to it; unique in the file: COCO from
                                         10,000,000, Objects365 from 20,000,000, counted up file-wide
``objects[].x/y/w/h``          float     box in pixels, ``x, y`` top-left; made ``xyxy`` and clamped
``objects[].names``            str       one class name (a dict key and compared to ``"person"``): a
                                         string, not Visual Genome's list
``relationships[]
.relationship_id``             int       counted file-wide from the same offset as the object ids
``.subject_id / .object_id``   int       an ``object_id`` of the same image
``.predicate``                 str       the relation text (a dict key)
``.confidence``                float     optional; kept when ``>= --relation_threshold``
=============================  ========  ==================================================================

Objects365 images are found through ``<o365_path>/image_id_to_filepath.json``; the
export writes that map next to the JSON (``image_id_to_filepath.json``, paths
relative to the run's image root) whenever the run holds Objects365 images. A
dataset of another name is written under its own name (the official reader has
no folder for it). The file is written entry by entry, so memory stays bounded
by one shard part (plus, for Objects365, the id -> path map: ~100 bytes an image).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pyarrow.parquet as pq

from storage.atomic import atomic_write, atomic_write_json
from storage.parts import StageStore, check_schema
from storage.schemas import SHARD

# Our dataset names -> the official ``dataset`` values.
OFFICIAL_DATASET = {"coco": "coco2017", "objects365": "o365"}
OFFICIAL_TO_OURS = {official: ours for ours, official in OFFICIAL_DATASET.items()}
ID_OFFSETS = {"coco2017": 10_000_000, "o365": 20_000_000}
OTHER_OFFSET = 30_000_000
O365_PATHS_FILE = "image_id_to_filepath.json"
VISUAL_GENOME = "vg"  # what import records for entries without "dataset"
COCO_FOLDER = re.compile(r"(train|val|test|test-dev|minival|valminusminival)\d{4}")

log = logging.getLogger("relfactory")


def shard_files(run_dir: Path) -> list[Path]:
    """The committed shard parts, in part order (the part store's own commit rule)."""
    opened = StageStore.open_recorded(Path(run_dir), "shard")
    if opened is None:
        return []
    store, n_parts = opened
    return [store.part_path(part) for part in store.committed_parts(n_parts)]


def iter_shard_rows(run_dir: Path) -> Iterator[dict]:
    for path in shard_files(run_dir):
        check_schema(path, SHARD)
        for batch in pq.ParquetFile(path).iter_batches(batch_size=256):
            yield from batch.to_pylist()


def official_dataset(name: str) -> str:
    return OFFICIAL_DATASET.get(name, name)


class _Numbering:
    """File-wide object and relationship ids, one counter pair per official dataset."""

    def __init__(self) -> None:
        self.objects: dict[str, int] = {}
        self.relations: dict[str, int] = {}

    def next(self, counters: dict[str, int], dataset: str) -> int:
        value = counters.get(dataset, ID_OFFSETS.get(dataset, OTHER_OFFSET))
        counters[dataset] = value + 1
        return value


def official_entry(row: dict[str, Any], numbering: _Numbering) -> dict[str, Any]:
    """One shard row as the official reader expects it."""
    dataset = official_dataset(row["dataset"])
    new_ids = {}
    objects = []
    for obj in row["objects"]:
        new_ids[obj["object_id"]] = numbering.next(numbering.objects, dataset)
        objects.append({"object_id": new_ids[obj["object_id"]], "x": obj["x"], "y": obj["y"], "w": obj["w"],
                        "h": obj["h"], "names": obj["names"]})
    relationships = []
    for rel in row["relationships"]:
        entry = {"relationship_id": numbering.next(numbering.relations, dataset), "predicate": rel["predicate"],
                 "subject_id": new_ids[rel["subject_id"]], "object_id": new_ids[rel["object_id"]]}
        if rel["confidence"] is not None:  # imported Visual Genome-style labels carry none
            entry["confidence"] = rel["confidence"]
        relationships.append(entry)
    entry: dict[str, Any] = {"image_id": row["image_id"]}
    if dataset != VISUAL_GENOME:  # the reader takes an entry without "dataset" for Visual Genome
        entry["dataset"] = dataset
    if row["data_split"] is not None:
        entry["data_split"] = row["data_split"]
    return {**entry, "objects": objects, "relationships": relationships}


def _write_entries(rows: Iterator[dict], fh: IO[str], o365_paths: dict[str, str]) -> int:
    numbering = _Numbering()
    fh.write("[")
    count = 0
    warned: set[str] = set()
    for row in rows:
        entry = official_entry(row, numbering)
        if entry.get("dataset") == "o365":
            o365_paths[str(row["image_id"])] = row["file_name"]
        split = entry.get("data_split")
        if entry.get("dataset") == "coco2017" and split and not COCO_FOLDER.fullmatch(split) and split not in warned:
            # Runs ingested before data_split came from the annotation file say "train".
            log.warning("data_split %r is not a COCO image folder (train2017, val2017 ...): the official reader "
                        "will look for images under <coco_path>/%s; re-ingest with --split to fix it", split, split)
            warned.add(split)
        fh.write(("," if count else "") + "\n" + json.dumps(entry))
        count += 1
    fh.write("\n]\n")
    return count


def export_rlipv2_json(run_dir: Path, destination: Path) -> int:
    """Write the run's shards as RLIPv2 JSON; returns the number of images written."""
    if not shard_files(run_dir):
        raise FileNotFoundError(f"run {Path(run_dir).name!r} has no shard output yet")
    written = 0
    o365_paths: dict[str, str] = {}

    def write(tmp: Path) -> None:
        nonlocal written
        with tmp.open("w") as fh:
            written = _write_entries(iter_shard_rows(run_dir), fh, o365_paths)

    atomic_write(destination, write)
    if o365_paths:
        atomic_write_json(Path(destination).parent / O365_PATHS_FILE, o365_paths)
    return written
