"""Training sources: relational shards of a run, and RLIPv2-format JSON files.

A source is a list of *parts* (``part_sizes``) whose rows are fetched with
``get(part, row)``. Shards are read one Parquet part at a time and only a
handful of decoded parts are cached, so a run of any size streams: the index
built at start-up holds one integer per kept image, never the rows. JSON files
(Visual Genome scene graphs, the official pseudo-labels) are a single part,
since the file is parsed whole anyway.

Text frequencies (``entity_counts`` / ``relation_counts``) are gathered during
the index scan; Label Sequence Extension samples negatives from them.
"""

from __future__ import annotations

import json
from collections import Counter, OrderedDict
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from pipeline.config import ConfigError, load_config
from pipeline.datasets import image_root as dataset_image_root
from storage.parts import StageStore, read_table
from storage.schemas import SHARD

from .records import MAX_RELATIONS, Record, record_from_objects


class SourceError(ValueError):
    """A training source that cannot be used (no shards, unknown image root, bad file)."""

    user_facing = True  # the CLI prints the message (it says what to pass) instead of a traceback


class Source(Protocol):
    name: str
    part_sizes: list[int]
    entity_counts: Counter
    relation_counts: Counter

    def get(self, part: int, row: int) -> Record: ...


def _keep(record: Record, require_relations: bool) -> bool:
    return bool(record.relations) if require_relations else bool(record.boxes)


def _count(record: Record, entities: Counter, relations: Counter) -> None:
    entities.update(record.names)
    relations.update(rel.predicate for rel in record.relations)


class _PartCache:
    """The last few decoded parts; a DataLoader worker walks one part at a time."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[int, list[Record]] = OrderedDict()

    def get(self, part: int, load: Any) -> list[Record]:
        if part in self._items:
            self._items.move_to_end(part)
            return self._items[part]
        records = load(part)
        self._items[part] = records
        while len(self._items) > self.size:
            self._items.popitem(last=False)
        return records


# ---------------------------------------------------------------------- shards
def committed_shard_parts(run_dir: Path) -> list[Path]:
    """Shard part files committed under the stage's current key (the part store's own rule)."""
    opened = StageStore.open_recorded(Path(run_dir), "shard")
    if opened is None:
        return []
    store, n_parts = opened
    return [store.part_path(part) for part in store.committed_parts(n_parts)]


def run_image_root(run_dir: Path, images: Path | None = None) -> Path:
    """Where a run's ``file_name`` values live: ``images`` if given, else the run's dataset config.

    The manifest records the config with absolute paths made relative, so a
    relative ``dataset.images`` is resolved from the working directory; when
    it does not exist there, the caller must say where the images are.
    """
    if images is not None:
        return Path(images)
    manifest_path = Path(run_dir) / "manifest.json"
    try:
        config = json.loads(manifest_path.read_text())["config"]
        dataset = load_config(config).dataset
    except (OSError, ValueError, KeyError, ConfigError) as exc:
        why = f"has no readable {manifest_path.name}" if isinstance(exc, OSError) else \
            f"records no dataset config in {manifest_path.name} (an imported run?)"
        raise SourceError(f"run {Path(run_dir).name!r} {why}; say where its images are with --images DIR "
                          f"(relfactory train --shards {Path(run_dir).name} --images DIR)") from None
    root = dataset_image_root(dataset)
    if not Path(root).is_dir():
        raise SourceError(f"run {Path(run_dir).name!r}: image root {str(root)!r} from its manifest does not exist "
                          f"here (the run was made elsewhere?); say where its images are with --images DIR "
                          f"(relfactory train --shards {Path(run_dir).name} --images DIR)")
    return Path(root)


class ShardSource:
    """The committed shard parts of one labelling run."""

    def __init__(self, run_dir: Path, images: Path | None = None, *, eta: float | None = None,
                 max_relations: int = MAX_RELATIONS, require_relations: bool = True, cache_parts: int = 4,
                 name: str | None = None, max_images: int | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.name = name or self.run_dir.name
        self.paths = committed_shard_parts(self.run_dir)
        if not self.paths:
            raise SourceError(f"run {self.name!r} has no committed shard parts under {self.run_dir / 'shard'}")
        self.image_root = run_image_root(self.run_dir, images)
        self.eta = eta
        self.max_relations = max_relations
        self.require_relations = require_relations
        self.cache_parts = cache_parts
        self._cache = _PartCache(cache_parts)
        self.entity_counts: Counter = Counter()
        self.relation_counts: Counter = Counter()
        # Per part, the rows that survive the load-time filters.
        self._kept: list[np.ndarray] = []
        for part in range(len(self.paths)):
            records = self._load(part)
            kept = [i for i, r in enumerate(records) if _keep(r, require_relations)]
            if max_images is not None:  # the first images only (the learning check trains on a few)
                kept = kept[:max(0, max_images - sum(len(k) for k in self._kept))]
            for i in kept:
                _count(records[i], self.entity_counts, self.relation_counts)
            self._kept.append(np.asarray(kept, dtype=np.int64))
        self.part_sizes = [len(k) for k in self._kept]
        if not sum(self.part_sizes):
            raise SourceError(f"run {self.name!r}: no image has a relation above eta={eta}")

    def _load(self, part: int) -> list[Record]:
        table = read_table(self.paths[part], SHARD)  # refuses a file of another schema
        return [self._record(row) for row in table.to_pylist()]

    def _record(self, row: dict[str, Any]) -> Record:
        return record_from_objects(row["image_id"], row["dataset"], row["file_name"], self.image_root,
                                   row["objects"], row["relationships"], eta=self.eta,
                                   max_relations=self.max_relations, name_key="names", width=row["width"],
                                   height=row["height"])

    def get(self, part: int, row: int) -> Record:
        return self._cache.get(part, self._load)[int(self._kept[part][row])]

    def __len__(self) -> int:
        return sum(self.part_sizes)

    def __getstate__(self) -> dict[str, Any]:
        # DataLoader workers get a copy without the parent's decoded parts.
        state = dict(self.__dict__)
        state["_cache"] = _PartCache(self.cache_parts)
        return state


# ------------------------------------------------------------------------ JSON
# Where images of a dataset live relative to its root when the entry has no file_name.
_FILE_NAME_RULES = {
    "vg": lambda image_id: f"{image_id}.jpg",
    "coco": lambda image_id: f"{image_id:012d}.jpg",
    "coco2017": lambda image_id: f"{image_id:012d}.jpg",  # the official files' name for COCO (storage.export)
}


def load_file_names(annotations: Path) -> dict[int, str]:
    """``image id -> file_name`` from a COCO-format annotation file (Objects365 keeps its patch folders)."""
    data = json.loads(Path(annotations).read_text())
    return {int(img["id"]): str(img["file_name"]) for img in data.get("images", [])}


def _relationship_ids(rel: dict[str, Any]) -> dict[str, Any]:
    """Original VG nests the subject/object; RLIPv2's files give their ids."""
    out = dict(rel)
    for role in ("subject", "object"):
        if f"{role}_id" not in out and isinstance(rel.get(role), dict):
            out[f"{role}_id"] = rel[role].get("object_id")
    return out


class JsonSource:
    """A JSON list in the official RLIPv2 layout: VG scene graphs or pseudo-labels.

    Entries are ``{image_id, [dataset], objects: [{object_id, x, y, w, h,
    names}], relationships: [{relationship_id, subject_id, object_id,
    predicate, [confidence]}]}``. VG entries carry no confidence (it is 1).
    """

    def __init__(self, path: Path, images: Path, *, dataset: str = "vg", eta: float | None = None,
                 max_relations: int = MAX_RELATIONS, require_relations: bool = True,
                 file_names: dict[int, str] | None = None, name: str | None = None) -> None:
        self.path = Path(path)
        self.name = name or self.path.stem
        self.image_root = Path(images)
        self.dataset = dataset
        self.eta = eta
        self.max_relations = max_relations
        self.file_names = file_names or {}
        try:
            entries = json.loads(self.path.read_text())
        except (OSError, ValueError) as exc:
            raise SourceError(f"cannot read {self.path.name}: {exc}") from None
        if not isinstance(entries, list):
            raise SourceError(f"{self.path.name}: expected a JSON list of images")
        self.entity_counts: Counter = Counter()
        self.relation_counts: Counter = Counter()
        self._entries: list[dict[str, Any]] = []
        for entry in entries:
            record = self._record(entry)
            if _keep(record, require_relations):
                _count(record, self.entity_counts, self.relation_counts)
                self._entries.append(entry)
        self.part_sizes = [len(self._entries)]
        if not self._entries:
            raise SourceError(f"{self.path.name}: no usable image (every one lacks relations above eta={eta})")

    def _file_name(self, entry: dict[str, Any], dataset: str) -> str:
        image_id = int(entry["image_id"])
        if entry.get("file_name"):
            return str(entry["file_name"])
        if image_id in self.file_names:
            return self.file_names[image_id]
        rule = _FILE_NAME_RULES.get(dataset)
        if rule is None:
            raise SourceError(f"{self.path.name}: dataset {dataset!r} needs an image-id -> file-name map "
                              "(a COCO-format annotation file)")
        return rule(image_id)

    def _record(self, entry: dict[str, Any]) -> Record:
        try:
            dataset = str(entry.get("dataset") or self.dataset)
            return record_from_objects(entry["image_id"], dataset, self._file_name(entry, dataset), self.image_root,
                                       entry.get("objects") or [],
                                       [_relationship_ids(r) for r in entry.get("relationships") or []],
                                       eta=self.eta, max_relations=self.max_relations, name_key="names",
                                       width=entry.get("width", 0), height=entry.get("height", 0))
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, SourceError):
                raise
            raise SourceError(f"{self.path.name}: malformed entry {str(entry)[:200]}: {exc!r}") from None

    def get(self, part: int, row: int) -> Record:
        if part != 0:
            raise IndexError(f"{self.name} has a single part")
        return self._record(self._entries[row])

    def __len__(self) -> int:
        return len(self._entries)
