"""One writer per run directory.

The lock file holds the owner's host, pid and start time, and appears whole:
the record is written to a private temp file that is then hard-linked to
``.lock`` (the link fails if a lock exists), so no reader ever sees it half
written. A second run on the same directory is refused with the owner named; a
lock whose process is gone (same host, pid not alive or reused) is stale and is
taken over safely: it is removed only if it is still the very record judged
stale, checked under an flock'd guard file, so of two processes racing to
recover it one wins and the other finds the winner's live lock.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import threading
import time
from pathlib import Path


class RunLocked(RuntimeError):
    pass


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _process_start_ticks(pid: int) -> str | None:
    """The process start time from /proc (tells a reused pid from the owner)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _missing_folders(folder: Path) -> list[Path]:
    """``folder`` and those of its parents that do not exist yet, deepest first."""
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing


class RunLock:
    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / ".lock"
        self.owned = False
        self._record = ""
        self._created: list[Path] = []

    def _owner_record(self) -> dict:
        pid = os.getpid()
        return {"host": socket.gethostname(), "pid": pid, "start": _process_start_ticks(pid), "since": time.time()}

    def _is_stale(self, owner: dict) -> bool:
        if owner.get("host") != socket.gethostname():
            return False  # cannot check another machine's processes: never steal
        pid = owner.get("pid")
        if not isinstance(pid, int) or not _pid_alive(pid):
            return True
        return owner.get("start") is not None and owner.get("start") != _process_start_ticks(pid)

    def acquire(self) -> None:
        # Folders made only for this lock are removed again on release if nothing was written
        # (a run refused while planning leaves no empty run folder behind).
        self._created = _missing_folders(self.path.parent)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        record = json.dumps(self._owner_record())
        for _ in range(3):
            if self._create(record):
                self._record = record
                self.owned = True
                # Earlier versions left their recovery guard file behind; we hold a live lock, so nobody recovers now.
                self.path.with_name(".lock.recover").unlink(missing_ok=True)
                return
            try:
                seen = self.path.read_text()
            except FileNotFoundError:
                continue
            except OSError:
                seen = ""
            try:
                owner = json.loads(seen or "{}")
            except ValueError:
                owner = {}
            if not isinstance(owner, dict):
                owner = {}
            if not owner and time.time() - self._mtime() < 5:
                time.sleep(0.2)  # an owner of an older version between creating and filling the file
                continue
            if owner and not self._is_stale(owner):
                raise RunLocked(
                    f"run directory {self.path.parent.name!r} is in use by pid {owner.get('pid')} on "
                    f"{owner.get('host')}; wait for it to finish, or delete {self.path.name} if that process is gone"
                ) from None
            self._remove_if_unchanged(seen)
        raise RunLocked(f"could not lock {self.path.parent.name!r}: another process keeps taking the lock")

    def _create(self, record: str) -> bool:
        """Create the lock with its content in one step; False if a lock exists."""
        tmp = self.path.with_name(f".lock.{os.getpid()}.{threading.get_ident()}.tmp")
        with open(tmp, "w") as fh:
            fh.write(record)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, self.path)
            return True
        except FileExistsError:
            return False
        except OSError:
            # No hard links on this filesystem: exclusive create, then fill.
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                return False
            with os.fdopen(fd, "w") as fh:
                fh.write(record)
                fh.flush()
                os.fsync(fh.fileno())
            return True
        finally:
            tmp.unlink(missing_ok=True)

    def _remove_if_unchanged(self, seen: str) -> None:
        """Delete the stale lock unless it changed since it was judged (another recoverer won).

        The guard is an flock on the run folder itself, so recovery leaves no file
        behind: a guard file could not be deleted safely (one recoverer holding the
        deleted file and another locking a new one would both go ahead).
        """
        guard = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(guard, fcntl.LOCK_EX)
            try:
                if self.path.read_text() == seen:
                    self.path.unlink()
            except FileNotFoundError:
                pass
        finally:
            os.close(guard)  # releases the flock

    def _mtime(self) -> float:
        try:
            return self.path.stat().st_mtime
        except OSError:
            return 0.0

    def release(self) -> None:
        if self.owned:
            try:
                if self.path.read_text() == self._record:  # never remove a lock someone else holds now
                    self.path.unlink()
            except FileNotFoundError:
                pass
            self.owned = False
        for folder in self._created:
            try:
                folder.rmdir()  # only if empty: anything the run wrote keeps its folder
            except OSError:
                break
        self._created = []

    def __enter__(self) -> "RunLock":
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
