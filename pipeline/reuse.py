"""Reuse committed parts across runs: a new run adopts what an earlier run computed.

Re-labelling COCO with a new captioner in a new run should not re-ingest the
dataset; trying a new η should not re-caption it. A stage's key says everything
its output depends on, so any sibling run under the same output root whose stage
directory carries the same key holds parts this run can take as they are. They
are hard-linked (no copy, same filesystem) or copied where links are not
possible, through the part store's own commit protocol (staged rows, errors,
marker, publish), so adoption is as crash-safe as computing.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

from storage.atomic import atomic_write_json
from storage.parts import StageStore

log = logging.getLogger("relfactory")


def sibling_stores(store: StageStore, output: Path, run_name: str) -> list[StageStore]:
    """Stores of the same stage and key in other runs under ``output``."""
    found = []
    if not output.is_dir():
        return found
    for run_dir in sorted(p for p in output.iterdir() if p.is_dir() and p.name != run_name and not p.name.startswith(".")):
        other = StageStore(run_dir, store.stage, store.key, fsync=store.fsync)
        if other.recorded_key() == store.key:
            found.append(other)
    return found


def _link_or_copy(src: Path, dst: Path) -> None:
    dst.unlink(missing_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def adopt_parts(store: StageStore, output: Path, run_name: str, n_parts: int) -> dict[str, int]:
    """Take every part that this store lacks and a sibling run has committed. Returns how many, per sibling run."""
    by_run: dict[str, int] = {}
    for other in sibling_stores(store, output, run_name):
        adopted = 0
        for part in range(n_parts):
            if store.is_committed(part) or not other.is_committed(part):
                continue
            marker = other.marker(part)
            # The part store's commit protocol: staged rows, errors, marker, then the rows made visible.
            store.uncommit(part)
            _link_or_copy(other.part_path(part), store.staged_path(part))
            _link_or_copy(other.errors_path(part), store.errors_path(part))
            store.commit(part, marker)
            adopted += 1
        if adopted:
            by_run[other.dir.parent.name] = adopted
            log.info("%s: adopted %d committed parts from run %s", store.stage, adopted, other.dir.parent.name)
    return by_run


def adopt_ingest(store: StageStore, output: Path, run_name: str, fsync: bool) -> tuple[dict, dict[str, int]] | None:
    """Adopt a sibling run's complete ingest (all parts and its stats); returns the stats and the parts per run."""
    for other in sibling_stores(store, output, run_name):
        stats_file = other.dir / "_STATS.json"
        try:
            stats = json.loads(stats_file.read_text())
        except (OSError, ValueError):
            continue
        if not other.is_complete(stats["n_parts"]):
            continue
        store.prepare(json.loads(other.stage_file.read_text())["config"], stats["n_parts"])
        by_run = adopt_parts(store, output, run_name, stats["n_parts"])
        atomic_write_json(store.dir / "_STATS.json", stats, fsync=fsync)
        store.mark_success(stats["n_parts"])
        return stats, by_run
    return None
