"""A labelled run on disk, written through the factory's own part store.

The demo photos with their boxes (``pipeline.datasets``) and a fixed set of
relations, one shard part per two images, a commit marker per part and a
manifest: what ``relfactory label`` leaves behind, without running the
labelling stages.
"""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.config import DatasetConfig, RunConfig
from pipeline.datasets import read_dataset
from storage.parts import StageStore

# image_id -> (subject object id, object object id, predicate, confidence)
DEMO_RELATIONS: dict[int, list[tuple[int, int, str, float]]] = {
    1: [(101, 102, "next to", 0.9), (101, 103, "in front of", 0.6), (101, 104, "in front of", 0.5)],
    2: [(201, 202, "looking through", 0.9), (202, 203, "on", 0.8), (201, 203, "behind", 0.4)],
    3: [(301, 302, "on", 0.95), (303, 302, "on", 0.7), (302, 304, "on", 0.6)],
    4: [(401, 404, "in front of", 0.5), (402, 401, "next to", 0.3)],
    5: [(501, 504, "next to", 0.4), (501, 505, "next to", 0.35)],
    6: [],
}


def shard_rows(relations: dict[int, list[tuple[int, int, str, float]]] = DEMO_RELATIONS) -> list[dict]:
    ingest = read_dataset(DatasetConfig(kind="demo"))
    rows = []
    for image in ingest.rows:
        image_id = image["image_id"]
        rows.append({
            "image_id": image_id, "dataset": image["dataset"], "data_split": image["data_split"],
            "file_name": image["file_name"], "width": image["width"], "height": image["height"],
            "objects": [{"object_id": o["object_id"], "category_id": o["category_id"], "names": o["category"],
                         "x": o["x"], "y": o["y"], "w": o["w"], "h": o["h"]} for o in image["objects"]],
            "relationships": [{"relationship_id": image_id * 10_000 + rank, "subject_id": s, "object_id": o,
                               "predicate": p, "confidence": c, "caption_indices": [0]}
                              for rank, (s, o, p, c) in enumerate(relations.get(image_id, []))],
        })
    return rows


def write_demo_run(output: Path, name: str = "demo", rows: list[dict] | None = None, part_size: int = 2) -> Path:
    """Write ``<output>/<name>`` with committed shard parts; returns the run directory."""
    rows = shard_rows() if rows is None else rows
    run_dir = Path(output) / name
    parts = [rows[i:i + part_size] for i in range(0, len(rows), part_size)]
    store = StageStore(run_dir, "shard", key="test-shard-key", fsync=False)
    store.prepare({}, len(parts))
    for index, part in enumerate(parts):
        store.write_part(index, part, [])
    store.mark_success(len(parts))
    config = RunConfig(name=name, output=Path(output), dataset=DatasetConfig(kind="demo")).model_dump(mode="json")
    (run_dir / "manifest.json").write_text(json.dumps({"run": name, "config": config}))
    return run_dir


def label_demo(output: Path) -> Path:
    """The demo photos labelled by the factory itself (oracle captions, greedy tagger, local executor)."""
    from pipeline.demo import demo_config
    from pipeline.label import run_label

    cfg = demo_config(Path(output)).model_copy(update={"executor": "local", "fsync": False})
    run_label(cfg)
    return cfg.run_dir


def read_run_rows(run_dir: Path) -> list[dict]:
    from storage.export import iter_shard_rows

    return list(iter_shard_rows(run_dir))
