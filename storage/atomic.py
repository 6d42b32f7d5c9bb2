"""Crash-safe file writes: write to a temp file in the same directory, fsync, rename.

A reader therefore sees either the old file or the complete new one, never a
torn write. ``fsync`` can be turned off (benchmarks measure what it costs).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipeline.faults import maybe_fault


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, write: Callable[[Path], None], *, fsync: bool = True) -> None:
    """Call ``write(tmp_path)`` then move the result to ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        if fsync:
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
        maybe_fault("before_rename", f"{path.parent.name}/{path.name}")
        os.replace(tmp, path)
        if fsync:
            fsync_dir(path.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path, data: bytes, *, fsync: bool = True) -> None:
    atomic_write(path, lambda tmp: tmp.write_bytes(data), fsync=fsync)


def atomic_write_json(path: Path, obj: Any, *, fsync: bool = True) -> None:
    text = json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n"
    atomic_write_bytes(path, text.encode(), fsync=fsync)


def remove_stale_temps(directory: Path) -> int:
    """Delete temp files a killed writer left behind; returns how many."""
    removed = 0
    if directory.is_dir():
        for tmp in directory.glob(".*.tmp"):
            tmp.unlink(missing_ok=True)
            removed += 1
    return removed
