"""Plan a run, execute (stage, part) units, finalise: the engine flows and the CLI share.

``plan_run`` ingests the dataset (once per dataset key), computes every stage's
cache key and lists the parts still to do. ``execute_part`` is the unit of work an
executor (in-process, Ray, a Prefect task) runs: read the part's inputs, call the
stage function with bounded retries, write the output atomically and commit.
``finalize`` marks complete stages and writes the manifest.
"""

from __future__ import annotations

import json
import logging
import time
import traceback
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

from pipeline.config import ConfigError, RunConfig, format_field_errors
from pipeline.contracts import ErrorRow, Row, StageError, StageOutput
from pipeline.datasets import scan_dataset
from pipeline.faults import maybe_fault
from pipeline.large_inputs import call_isolated, captions_are_large, ingest_isolated
from pipeline.keys import compute_keys, stage_config
from pipeline.reuse import adopt_ingest, adopt_parts
from pipeline.row_guard import ENCODING_ERRORS, set_aside_unencodable
from pipeline.sizing import auto_part_size
from pipeline.stage_specs import PART_STAGES, STAGES
from stages.ingest import partition_errors, partition_ids
from storage.atomic import atomic_write_json
from storage.manifest import redact_text, write_manifest
from storage.parts import StageStore

log = logging.getLogger("relfactory")


@dataclass
class RunPlan:
    cfg: RunConfig
    keys: dict[str, str]
    n_parts: int
    todo: dict[str, list[int]]
    ingest_stats: dict[str, Any] = field(default_factory=dict)
    # Parts taken from sibling runs while planning: run name -> stage -> parts.
    adopted: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def run_dir(self) -> Path:
        return self.cfg.run_dir

    @property
    def nothing_to_do(self) -> bool:
        return not any(self.todo.values())

    def describe(self) -> str:
        lines = []
        for stage in ("ingest", *PART_STAGES):
            parts = self.todo.get(stage, [])
            state = "up to date (cached)" if not parts else f"{len(parts)}/{self.n_parts} parts to compute"
            lines.append(f"  {stage:<8} {self.keys[stage]}  {state}")
        return "\n".join(lines)


def store_for(cfg: RunConfig, stage: str, key: str) -> StageStore:
    return StageStore(cfg.run_dir, stage, key, fsync=cfg.fsync, compression=cfg.shard.compression,
                      row_group_size=cfg.shard.row_group_size)


# Caption keys (which hash the captions file) whose file this process already accepted: the
# Prefect flow plans again right after the CLI did, and at 5 M captions a check costs minutes.
_CHECKED_CAPTION_KEYS: set[str] = set()


def validate_resources(cfg: RunConfig, keys: dict[str, str] | None = None) -> None:
    """Fail before any work on inputs that would make every part fail the same way.

    With ``keys``, a captions file whose caption stage is already complete under its key
    (which hashes the file) is not read again: it was accepted then, and no caption part
    will read it now. Reading 5 M captions was most of a million-image re-plan.
    """
    from stages.vocab import matcher_for

    matcher_for(cfg.match, cfg.dataset.kind)  # a malformed synonyms file raises ConfigError here
    if cfg.tag.checkpoint is not None and not Path(cfg.tag.checkpoint).is_file():
        raise ConfigError(format_field_errors([("tag.checkpoint", f"file not found: {cfg.tag.checkpoint}")]))
    if cfg.caption.backend == "oracle" and cfg.caption.captions_file is not None:
        captions = Path(cfg.caption.captions_file)
        if keys is not None and (keys["caption"] in _CHECKED_CAPTION_KEYS
                                 or _stage_complete(cfg, "caption", keys["caption"])):
            return
        if captions_are_large(captions):
            call_isolated(_check_captions_file, captions, cfg.caption.n_captions)  # not kept in the driver
        else:
            _check_captions_file(captions, cfg.caption.n_captions)
        if keys is not None:
            _CHECKED_CAPTION_KEYS.add(keys["caption"])


def _stage_complete(cfg: RunConfig, stage: str, key: str) -> bool:
    """The stage's _SUCCESS names this key (every part was committed under it)."""
    try:
        return json.loads(store_for(cfg, stage, key).success_file.read_text()).get("key") == key
    except (OSError, ValueError, AttributeError):
        return False


def _check_captions_file(path: Path, n_captions: int) -> None:
    """Read the oracle's captions now (cached for the stage), so a bad file is refused before Ray or ingest start."""
    from stages.captioners.base import CaptionerLoadError
    from stages.captioners.oracle import OracleCaptioner

    if not path.is_file():
        problem = f"file not found: {path}"
    elif path.stat().st_size == 0:
        problem = f"{path} is empty (0 bytes); expected COCO captions JSON"
    else:
        try:
            captioner = OracleCaptioner.from_file(path, n_captions)
        except CaptionerLoadError as exc:
            problem = " ".join(str(exc).split())  # one line, whatever the JSON error looked like
        else:
            if captioner.has_captions():
                return
            problem = f"{path} holds no captions"
    raise ConfigError(format_field_errors([("caption.captions_file", problem)]))


def plan_run(cfg: RunConfig) -> RunPlan:
    keys = compute_keys(cfg)  # only hashes files: a missing or malformed one is refused just below
    validate_resources(cfg, keys)
    ingest = store_for(cfg, "ingest", keys["ingest"])
    stats_file = ingest.dir / "_STATS.json"
    todo: dict[str, list[int]] = {"ingest": []}
    if ingest.recorded_key() == keys["ingest"] and stats_file.is_file():
        stats = json.loads(stats_file.read_text())
        n_parts = stats["n_parts"]
    else:
        n_parts, stats = 0, {}
    adopted: dict[str, dict[str, int]] = {}
    if not n_parts or not ingest.is_complete(n_parts):
        adopted_ingest = adopt_ingest(ingest, cfg.output, cfg.name, cfg.fsync) if cfg.reuse_runs else None
        if adopted_ingest is not None:
            stats, by_run = adopted_ingest
            n_parts = stats["n_parts"]
            _record_adoption(adopted, "ingest", by_run)
        else:
            n_parts, stats = ingest_isolated(cfg, ingest, _ingest)
            todo["ingest"] = list(range(n_parts))
    for stage in PART_STAGES:
        spec = STAGES[stage]
        store = store_for(cfg, stage, keys[stage])
        store.prepare(stage_config(cfg, stage), n_parts)
        if cfg.retry_failed:
            _uncommit_failed(store, n_parts)
        elif cfg.reuse_runs:
            _record_adoption(adopted, stage, adopt_parts(store, cfg.output, cfg.name, n_parts))
        # A part whose input part is recomputed must be recomputed after it.
        upstream_todo = set().union(*(todo[u] for u in spec.inputs + spec.error_inputs))
        todo[stage] = [
            p for p in range(n_parts)
            if p in upstream_todo or not _committed_from_current_inputs(cfg, store, stage, p, keys)
        ]
    return RunPlan(cfg=cfg, keys=keys, n_parts=n_parts, todo=todo, ingest_stats=stats, adopted=adopted)


def _record_adoption(adopted: dict[str, dict[str, int]], stage: str, by_run: dict[str, int]) -> None:
    for run, parts in by_run.items():
        adopted.setdefault(run, {})[stage] = parts


def input_digests(cfg: RunConfig, stage: str, part: int, keys: dict[str, str]) -> dict[str, str] | None:
    """Digest of each input part a (stage, part) reads; None while one is not committed."""
    spec = STAGES[stage]
    digests = {}
    for name in dict.fromkeys(spec.inputs + spec.error_inputs):
        store = store_for(cfg, name, keys[name])
        if not store.is_committed(part):
            return None
        digests[name] = store.digest(part)
    return digests


def _committed_from_current_inputs(cfg: RunConfig, store: StageStore, stage: str, part: int,
                                   keys: dict[str, str]) -> bool:
    digests = input_digests(cfg, stage, part, keys)
    return digests is not None and store.is_committed(part, digests)


def _uncommit_failed(store: StageStore, n_parts: int) -> None:
    """--retry-failed: forget parts whose stage exhausted its retries, so they run again."""
    for part in range(n_parts):
        if store.is_committed(part) and store.marker(part).get("error_reasons", {}).get("stage_failed"):
            store.uncommit(part)


def _ingest(cfg: RunConfig, store: StageStore) -> tuple[int, dict[str, Any]]:
    """Validate the dataset and write its parts one at a time (rows are built per part)."""
    scan = scan_dataset(cfg.dataset)
    image_ids = scan.image_ids
    # An ingest resumed after a crash keeps the size it started with, whatever --workers is now:
    # parts already committed were cut with it.
    part_size = cfg.part_size or _chosen_part_size(store) or auto_part_size(len(image_ids), cfg.workers)
    bounds = partition_ids(image_ids, part_size)
    part_errors = partition_errors(scan.errors, bounds)
    store.prepare({**stage_config(cfg, "ingest"), "chosen_part_size": part_size}, len(bounds))
    rows = scan.rows()
    for index, (ids, errors) in enumerate(zip(bounds, part_errors)):
        part_rows = list(islice(rows, len(ids)))
        if not store.is_committed(index):
            write_part_guarded(store, index, part_rows, errors)
    stats = {"n_parts": len(bounds), "part_size": part_size, "images": len(image_ids), "image_errors": len(scan.errors),
             "boxes": dict(sorted(scan.box_stats.items()))}
    atomic_write_json(store.dir / "_STATS.json", stats, fsync=cfg.fsync)
    store.mark_success(len(bounds))
    return len(bounds), stats


def _chosen_part_size(store: StageStore) -> int | None:
    """The part size an interrupted ingest of this key chose, from its _STAGE.json."""
    try:
        recorded = json.loads(store.stage_file.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(recorded, dict) or recorded.get("key") != store.key:
        return None
    size = (recorded.get("config") or {}).get("chosen_part_size")
    return size if isinstance(size, int) and size > 0 else None


def execute_part(cfg: RunConfig, stage: str, part: int, keys: dict[str, str]) -> dict[str, Any]:
    """Compute and commit one (stage, part); a committed part is skipped (idempotent)."""
    spec = STAGES[stage]
    store = store_for(cfg, stage, keys[stage])
    digests = input_digests(cfg, stage, part, keys)
    if digests is None:
        raise StageError(f"{stage} part {part}: an input part is not committed (run the stages in order)")
    if store.is_committed(part, digests):
        return {"stage": stage, "part": part, "skipped": True}
    started = time.perf_counter()
    inputs = {name: store_for(cfg, name, keys[name]).read_rows(part) for name in spec.inputs}
    for name in spec.error_inputs:
        inputs[f"{name}.errors"] = store_for(cfg, name, keys[name]).read_errors(part)
    output, attempts = _run_with_retries(spec.load(), inputs, cfg, stage, part)
    marker = write_part_guarded(store, part, output.rows, output.errors, inputs=digests)
    return {"stage": stage, "part": part, "skipped": False, "rows": marker["rows"], "errors": marker["errors"],
            "attempts": attempts, "seconds": round(time.perf_counter() - started, 3)}


def write_part_guarded(store: StageStore, part: int, rows: list[Row], errors: list[ErrorRow],
                       inputs: dict[str, str] | None = None) -> dict[str, Any]:
    """Write and commit a part; rows that cannot be encoded become error rows rather than failing the part."""
    try:
        return store.write_part(part, rows, errors, inputs=inputs)
    except ENCODING_ERRORS as exc:
        if isinstance(exc, OSError):
            raise  # Arrow's I/O errors (a full disk) are not about the rows
        rows, errors = set_aside_unencodable(rows, errors, store.schema, store.stage)
        return store.write_part(part, rows, errors, inputs=inputs)


def _run_with_retries(fn, inputs, cfg: RunConfig, stage: str, part: int) -> tuple[StageOutput, int]:
    last: BaseException | None = None
    for attempt in range(1, cfg.max_retries + 2):
        try:
            maybe_fault("before_compute", stage, part)
            return fn(inputs, cfg), attempt
        except Exception as exc:  # a stage bug or a flaky resource: retry, then record
            if getattr(exc, "fatal", False):
                raise  # e.g. model weights missing: every part would fail the same way
            last = exc
            log.warning("stage %s failed (attempt %d/%d): %s", stage, attempt, cfg.max_retries + 1,
                        redact_text(str(exc)))
    assert last is not None
    detail = redact_text(f"{type(last).__name__}: {last}\n" + "".join(traceback.format_exception(last)[-3:]))
    primary = STAGES[stage].inputs[0]  # every image of the part, so none goes unaccounted
    image_ids = sorted({row["image_id"] for row in inputs.get(primary, [])})
    errors = [ErrorRow(image_id, stage, "stage_failed", detail) for image_id in image_ids]
    return StageOutput(rows=[], errors=errors), cfg.max_retries + 1


def finalize(plan: RunPlan, summaries: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    cfg = plan.cfg
    for stage in PART_STAGES:
        store = store_for(cfg, stage, plan.keys[stage])
        if all(store.is_committed(p) for p in range(plan.n_parts)):
            store.mark_success(plan.n_parts)
    stores = {name: store_for(cfg, name, plan.keys[name]) for name in ("ingest", *PART_STAGES)}
    manifest = write_manifest(plan, stores, summaries or [])
    _write_card(cfg)
    return manifest


def _write_card(cfg: RunConfig) -> None:
    """The run's dataset card (README.md); a by-product, so a failure to write it never fails the run."""
    from storage.card import write_card

    try:
        write_card(cfg.run_dir, fsync=cfg.fsync)
    except (OSError, ValueError) as exc:
        log.warning("could not write the dataset card of run %s: %s", cfg.name, redact_text(str(exc)))
