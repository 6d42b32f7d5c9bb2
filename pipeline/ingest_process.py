"""Ingest a large dataset in a child process, so the long-lived driver's memory stays flat.

Ingest holds every image entry and box of the dataset at once (compactly, but a
million Objects365 images are still ~2 GB), and CPython seldom returns such a
heap to the system: a driver that ingested once (a deployment serving scheduled
runs, the Prefect flow process) would keep that size for the rest of its life
while it only needs per-part bookkeeping. Annotation files above
``ISOLATE_BYTES`` are therefore ingested by a spawned child that writes the
ingest parts and exits; smaller ones are ingested in place, where a child's
start-up (seconds of imports) would cost more than it saves.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from pipeline.config import RunConfig
from pipeline.datasets import annotations_file
from storage.parts import StageStore

# ~25 k Objects365 images (2.3 KB of annotations each); COCO val2017 (25 MB) stays in process.
ISOLATE_BYTES = 64 << 20

Ingest = Callable[[RunConfig, StageStore], tuple[int, dict[str, Any]]]


def should_isolate(cfg: RunConfig) -> bool:
    try:
        return os.path.getsize(annotations_file(cfg.dataset)) > ISOLATE_BYTES
    except OSError:
        return False  # the in-process ingest reports the missing file


def ingest_isolated(cfg: RunConfig, store: StageStore, ingest: Ingest) -> tuple[int, dict[str, Any]]:
    """``ingest(cfg, store)``, in a child process when the annotation file is large; same result either way."""
    if not should_isolate(cfg):
        return ingest(cfg, store)
    spawn = multiprocessing.get_context("spawn")  # a fork would copy the driver's threads (Prefect, Ray)
    with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
        return pool.submit(_child, cfg.model_dump(mode="json"), store.key).result()


def _child(config: dict[str, Any], key: str) -> tuple[int, dict[str, Any]]:
    from pipeline.runner import _ingest, store_for

    cfg = RunConfig.model_validate(config)
    return _ingest(cfg, store_for(cfg, "ingest", key))
