"""Read large inputs in a child process, so the long-lived driver's memory stays flat.

Ingest holds every image entry and box of the dataset at once (compactly, but a
million Objects365 images are still ~2 GB), and the oracle captions check reads
the whole captions file (5 M captions at N_cap = 5: another ~2 GB); CPython
seldom returns such a heap to the system, so a driver that did either once (a
deployment serving scheduled runs, the Prefect flow process) would keep that
size for the rest of its life while it only needs per-part bookkeeping. Files
above ``ISOLATE_BYTES`` are therefore read by a spawned child that does the work
(writes the ingest parts, raises the config error) and exits; smaller ones are
read in place, where a child's start-up (seconds of imports) would cost more
than it saves.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from pipeline.config import RunConfig
from pipeline.datasets import annotations_file
from storage.parts import StageStore

# ~25 k Objects365 images (2.3 KB of annotations each); COCO val2017 (25 MB) stays in process.
ISOLATE_BYTES = 64 << 20
# A captions file costs ~4x its size as an index (measured: 40 MB, 500 k captions -> +180 MB RSS).
CAPTIONS_ISOLATE_BYTES = 8 << 20

T = TypeVar("T")
Ingest = Callable[[RunConfig, StageStore], tuple[int, dict[str, Any]]]


def is_large(path: Path, limit: int | None = None) -> bool:
    try:
        return os.path.getsize(path) > (ISOLATE_BYTES if limit is None else limit)
    except OSError:
        return False  # the in-process reader reports the missing file


def captions_are_large(path: Path) -> bool:
    return is_large(path, CAPTIONS_ISOLATE_BYTES)


def should_isolate(cfg: RunConfig) -> bool:
    return is_large(annotations_file(cfg.dataset))


def call_isolated(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` in a spawned child process (``fn`` and its arguments, result and errors must pickle)."""
    spawn = multiprocessing.get_context("spawn")  # a fork would copy the driver's threads (Prefect, Ray)
    with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
        return pool.submit(fn, *args).result()


def ingest_isolated(cfg: RunConfig, store: StageStore, ingest: Ingest) -> tuple[int, dict[str, Any]]:
    """``ingest(cfg, store)``, in a child process when the annotation file is large; same result either way."""
    if not should_isolate(cfg):
        return ingest(cfg, store)
    return call_isolated(_ingest_child, cfg.model_dump(mode="json"), store.key)


def _ingest_child(config: dict[str, Any], key: str) -> tuple[int, dict[str, Any]]:
    from pipeline.runner import _ingest, store_for

    cfg = RunConfig.model_validate(config)
    return _ingest(cfg, store_for(cfg, "ingest", key))
