"""Read official RLIPv2 pseudo-label JSON back into a run's shard stage.

The inverse of ``storage.export``: each entry becomes one SHARD row, in file
order, so ``export -> import -> export`` gives the same file byte for byte. The
fields are those the official reader uses (table in ``storage.export``); what the
format does not carry is filled from what it implies:

* ``dataset``: ``coco2017`` -> ``coco``, ``o365`` -> ``objects365`` (others kept);
* ``file_name``: COCO ``<image_id:012d>.jpg`` (the official reader's rule),
  Objects365 from ``image_id_to_filepath.json`` (beside the JSON, or given),
  Visual Genome (no ``dataset``) ``<image_id>.jpg``;
* ``category_id``: the COCO-91 id of a COCO class name, else null;
* ``width``/``height``: read from the image headers when an image root is given, else null;
* ``caption_indices``: empty (the official file does not record provenance).

The result is a run folder with a ``shard`` stage (committed through the part
store) and a manifest naming the imported file, so ``inspect``, ``export`` and
``train --shards RUN --images DIR`` work on it.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pipeline.lock import RunLock
from storage.atomic import atomic_write_json
from storage.downstream import COCO_CATEGORIES
from storage.export import O365_PATHS_FILE, OFFICIAL_TO_OURS, VISUAL_GENOME
from storage.manifest import stage_summary
from storage.parts import StageStore, sha256_file

DEFAULT_PART_SIZE = 1000
_COCO_IDS = {name: coco_id for coco_id, name in COCO_CATEGORIES}


class ImportFormatError(ValueError):
    """An entry the official reader could not use either; names the entry and the field."""

    user_facing = True


def _require(entry: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    value = entry.get(key)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ImportFormatError(f"{where}: field {key!r} must be {_kind_name(kind)}, found {value!r:.80}")
    return value


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(k.__name__ for k in kinds)


def _file_name(entry: dict[str, Any], dataset: str | None, o365_paths: dict[str, str], where: str) -> str:
    image_id = entry["image_id"]
    if dataset == "coco2017":
        return f"{image_id:012d}.jpg"
    if dataset == "o365":
        try:
            return o365_paths[str(image_id)]
        except KeyError:
            raise ImportFormatError(f"{where}: Objects365 image {image_id} is not in {O365_PATHS_FILE} "
                                    "(put the map beside the JSON or pass --image-paths)") from None
    if dataset is None:  # Visual Genome scene graphs
        return f"{image_id}.jpg"
    raise ImportFormatError(f"{where}: dataset {dataset!r} has no image file rule (coco2017, o365, or none for VG)")


def shard_row(entry: Any, index: int, o365_paths: dict[str, str], images: Path | None = None) -> dict[str, Any]:
    """One official entry as a SHARD row; raises ImportFormatError on what the official reader would choke on."""
    where = f"entry {index}"
    if not isinstance(entry, dict):
        raise ImportFormatError(f"{where}: expected an object, found {type(entry).__name__}")
    image_id = _require(entry, "image_id", int, where)
    where = f"entry {index} (image {image_id})"
    dataset = entry.get("dataset")
    data_split = entry.get("data_split", "train2017" if dataset == "coco2017" else None)
    objects = []
    known_ids = set()
    for obj in _require(entry, "objects", list, where):
        obj_where = f"{where}, object {obj.get('object_id') if isinstance(obj, dict) else obj!r}"
        if not isinstance(obj, dict):
            raise ImportFormatError(f"{obj_where}: expected an object")
        object_id = _require(obj, "object_id", int, obj_where)
        name = _require(obj, "names", str, obj_where)
        box = [float(_require(obj, k, (int, float), obj_where)) for k in ("x", "y", "w", "h")]
        known_ids.add(object_id)
        objects.append({"object_id": object_id, "category_id": _COCO_IDS.get(name) if dataset == "coco2017" else None,
                        "names": name, "x": box[0], "y": box[1], "w": box[2], "h": box[3]})
    relationships = []
    for rel in _require(entry, "relationships", list, where):
        if not isinstance(rel, dict):
            raise ImportFormatError(f"{where}: a relationship is not an object: {rel!r:.80}")
        for key in ("subject_id", "object_id"):
            if _require(rel, key, int, where) not in known_ids:
                raise ImportFormatError(f"{where}: relationship {rel.get('relationship_id')} {key} "
                                        f"{rel[key]} is not an object of the image")
        confidence = rel.get("confidence")
        if confidence is not None and not isinstance(confidence, (int, float)):
            raise ImportFormatError(f"{where}: relationship confidence must be a number, found {confidence!r:.80}")
        relationships.append({
            "relationship_id": int(rel.get("relationship_id", len(relationships))),
            "subject_id": rel["subject_id"], "object_id": rel["object_id"],
            "predicate": _require(rel, "predicate", str, where),
            "confidence": None if confidence is None else float(confidence), "caption_indices": []})
    file_name = _file_name(entry, dataset, o365_paths, where)
    width = height = None
    if images is not None:
        width, height = _image_size(images, dataset, data_split, file_name)
    return {"image_id": image_id, "dataset": OFFICIAL_TO_OURS.get(dataset, dataset or VISUAL_GENOME),
            "data_split": data_split, "file_name": file_name, "width": width, "height": height,
            "objects": objects, "relationships": relationships}


def _image_size(images: Path, dataset: str | None, data_split: str | None,
                file_name: str) -> tuple[int, int] | tuple[None, None]:
    from PIL import Image

    # COCO roots are given either as the split folder itself or as its parent (the official --coco_path).
    candidates = [images / file_name]
    if dataset == "coco2017" and data_split:
        candidates.append(images / data_split / file_name)
    for path in candidates:
        try:
            with Image.open(path) as img:
                return img.size
        except OSError:
            continue
    return None, None


def _entries(source: Path) -> Iterator[Any]:
    """The file's entries one at a time (ijson): an Objects365 pseudo-label file runs to gigabytes."""
    import ijson

    with source.open("rb") as fh:
        try:
            first = fh.read(1)
            while first.isspace():
                first = fh.read(1)
            if first != b"[":
                raise ImportFormatError(f"{source.name}: expected a JSON list of images")
            fh.seek(0)
            yield from ijson.items(fh, "item", use_float=True)
        except ijson.JSONError as exc:
            raise ImportFormatError(f"cannot read {source.name}: {exc}") from None


def import_rlipv2_json(source: Path, run_dir: Path, *, images: Path | None = None, image_paths: Path | None = None,
                       part_size: int = DEFAULT_PART_SIZE, fsync: bool = True) -> int:
    """Write the entries of ``source`` as the shard stage of ``run_dir``; returns the number of images.

    Parts are written as the file streams by, so memory holds one part's rows.
    """
    source, run_dir = Path(source), Path(run_dir)
    if not source.is_file():
        raise FileNotFoundError(f"no such pseudo-label file: {source}")
    paths_file = image_paths or source.parent / O365_PATHS_FILE
    o365_paths = json.loads(paths_file.read_text()) if paths_file.is_file() else {}
    key = "import-" + sha256_file(source)[:16]
    config = {"imported_from": source.name, "part_size": part_size}
    run_dir.mkdir(parents=True, exist_ok=True)
    with RunLock(run_dir):
        store = StageStore(run_dir, "shard", key, fsync=fsync)
        store.prepare(config, 0)  # the part count is known once the file has streamed by (recorded below)
        count = n_parts = 0
        chunk: list[dict[str, Any]] = []
        for entry in _entries(source):
            chunk.append(shard_row(entry, count, o365_paths, images))
            count += 1
            if len(chunk) == part_size:
                store.write_part(n_parts, chunk, [])
                n_parts, chunk = n_parts + 1, []
        if chunk or not n_parts:
            store.write_part(n_parts, chunk, [])
            n_parts += 1
        atomic_write_json(store.stage_file, {"stage": "shard", "key": key, "n_parts": n_parts, "config": config},
                          fsync=fsync)
        store.mark_success(n_parts)
        atomic_write_json(run_dir / "manifest.json", {
            "run": run_dir.name,
            "updated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "imported_from": source.name,
            # No "config": no dataset config was involved, so readers ask for the image root (--images).
            "config_hash": hashlib.sha256(key.encode()).hexdigest()[:16],
            "n_parts": n_parts,
            "stages": {"shard": stage_summary(store, n_parts)},
        }, fsync=fsync)
    return count
