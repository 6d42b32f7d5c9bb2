"""Bring stage folders of the old layout to the current one (see ``storage.parts``).

Before, a stage folder held its commit markers (``part-N.done``) and error tables
(``errors/part-N.parquet``) next to the parts, so Parquet dataset readers pointed
at the folder failed on the markers or picked up the error table's schema. Now
markers live in ``_markers/``, error tables in ``_errors/``, and a visible part is
always a committed one.

Migration is in place and resumable: for each old marker the error table is moved,
the marker rewritten under ``_markers/`` (its checksums still hold: no data file
changes), and only then the old marker deleted; a second pass removes what no old
marker committed (those parts were never committed and are recomputed anyway).
A writer (``StageStore.prepare``, under the run lock) migrates on its own;
readers refuse an old folder and say how to migrate it (``relfactory migrate``).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

from storage.atomic import atomic_write_json, fsync_dir
from storage.parts import ERRORS_DIR, MARKERS_DIR, PART_GLOB, part_name

log = logging.getLogger("relfactory")

OLD_ERRORS_DIR = "errors"
OLD_MARKER_GLOB = "part-*.done"


class OldLayoutError(RuntimeError):
    """A run folder written before stage folders became plain Parquet datasets."""

    user_facing = True  # the CLI prints the message (what to run) instead of a traceback


def is_old_layout(stage_dir: Path) -> bool:
    stage_dir = Path(stage_dir)
    return (stage_dir / OLD_ERRORS_DIR).is_dir() or any(stage_dir.glob(OLD_MARKER_GLOB))


def refuse_old_layout(stage_dir: Path) -> None:
    """Raise ``OldLayoutError`` naming the command that converts the run."""
    if is_old_layout(stage_dir):
        run_dir = Path(stage_dir).parent
        raise OldLayoutError(
            f"run folder {run_dir.name!r} uses the old stage layout (part-*.done markers, errors/ next to the parts); "
            f"convert it in place with `relfactory migrate {run_dir}` (or re-run `relfactory label` on it)")


def migrate_stage_dir(stage_dir: Path, *, fsync: bool = True) -> int:
    """Convert one stage folder in place; returns how many committed parts were carried over (0: nothing to do)."""
    stage_dir = Path(stage_dir)
    if not is_old_layout(stage_dir):
        return 0
    (stage_dir / MARKERS_DIR).mkdir(exist_ok=True)
    (stage_dir / ERRORS_DIR).mkdir(exist_ok=True)
    carried = 0
    for old_marker in sorted(stage_dir.glob(OLD_MARKER_GLOB)):
        try:
            marker = json.loads(old_marker.read_text())
            part = int(marker["part"])
        except (OSError, ValueError, KeyError, TypeError):
            old_marker.unlink(missing_ok=True)  # unreadable: it never committed anything we could trust
            continue
        old_errors = stage_dir / OLD_ERRORS_DIR / part_name(part)
        new_errors = stage_dir / ERRORS_DIR / part_name(part)
        if old_errors.is_file():
            os.replace(old_errors, new_errors)
        marker["rows_file"] = {**(marker.get("rows_file") or {}), "path": part_name(part)}
        marker["errors_file"] = {**(marker.get("errors_file") or {}), "path": f"{ERRORS_DIR}/{part_name(part)}"}
        atomic_write_json(stage_dir / MARKERS_DIR / f"part-{part:05d}.json", marker, fsync=fsync)
        old_marker.unlink()
        carried += 1
    # Whatever no old marker committed: error tables of uncommitted parts, and their visible rows.
    shutil.rmtree(stage_dir / OLD_ERRORS_DIR, ignore_errors=True)
    for visible in stage_dir.glob(PART_GLOB):
        if not (stage_dir / MARKERS_DIR / f"{visible.name.split('.', 1)[0]}.json").is_file():
            visible.unlink()
    if fsync:
        fsync_dir(stage_dir)
    log.info("%s: migrated to the current stage layout (%d committed parts kept)", stage_dir.name, carried)
    return carried


def migrate_run(run_dir: Path, *, fsync: bool = True) -> dict[str, int]:
    """Migrate every stage folder of a run under its lock; returns committed parts kept per migrated stage."""
    from pipeline.lock import RunLock  # here: pipeline imports storage, not the other way round at import time

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"no such run folder: {run_dir}")
    migrated = {}
    with RunLock(run_dir):
        for stage_dir in sorted(p for p in run_dir.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))):
            if is_old_layout(stage_dir):
                migrated[stage_dir.name] = migrate_stage_dir(stage_dir, fsync=fsync)
    return migrated
