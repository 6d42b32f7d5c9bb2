"""Crash-safe file writes: write to a temp file in the same directory, fsync, rename.

A reader therefore sees either the old file or the complete new one, never a
torn write. ``fsync`` can be turned off (benchmarks measure what it costs).
The file gets the mode a plain ``open(path, "w")`` would give it (0666 less the
umask): ``mkstemp`` creates its temp file 0600, which would leave every part,
manifest, export and checkpoint unreadable to the user's group.
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


def current_umask() -> int:
    """The process umask, read without changing it where Linux allows (os.umask can only swap it)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: Path, write: Callable[[Path], None], *, fsync: bool = True,
                 fault_label: str | None = None) -> None:
    """Call ``write(tmp_path)`` then move the result to ``path`` atomically.

    ``fault_label`` names the write for ``pipeline.faults`` (default ``<parent dir>/<file name>``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~current_umask())
        if fsync:
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
        maybe_fault("before_rename", fault_label or f"{path.parent.name}/{path.name}")
        os.replace(tmp, path)
        if fsync:
            fsync_dir(path.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path, data: bytes, *, fsync: bool = True, fault_label: str | None = None) -> None:
    atomic_write(path, lambda tmp: tmp.write_bytes(data), fsync=fsync, fault_label=fault_label)


def atomic_write_json(path: Path, obj: Any, *, fsync: bool = True, fault_label: str | None = None) -> None:
    text = json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n"
    atomic_write_bytes(path, text.encode(), fsync=fsync, fault_label=fault_label)


def remove_stale_temps(directory: Path) -> int:
    """Delete temp files a killed writer left behind; returns how many."""
    removed = 0
    if directory.is_dir():
        for tmp in directory.glob(".*.tmp"):
            tmp.unlink(missing_ok=True)
            removed += 1
    return removed
