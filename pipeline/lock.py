"""One writer per run directory.

The lock file is created with O_EXCL and holds the owner's host, pid and start
time. A second run on the same directory is refused with the owner named; a
lock whose process is gone (same host, pid not alive or reused) is stale and is
taken over safely: it is renamed away atomically first, so two processes racing
to recover it cannot both win.
"""

from __future__ import annotations

import json
import os
import socket
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


class RunLock:
    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / ".lock"
        self.owned = False

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
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                try:
                    owner = json.loads(self.path.read_text() or "{}")
                except (OSError, ValueError):
                    owner = {}
                if not owner and time.time() - self._mtime() < 5:
                    time.sleep(0.2)  # the owner is between creating and filling the file
                    continue
                if owner and not self._is_stale(owner):
                    raise RunLocked(
                        f"run directory {self.path.parent.name!r} is in use by pid {owner.get('pid')} on "
                        f"{owner.get('host')}; wait for it to finish, or delete {self.path.name} if that process is gone"
                    ) from None
                stale = self.path.with_name(f".lock.stale-{os.getpid()}")
                try:
                    os.rename(self.path, stale)  # atomic: only one recoverer wins
                    stale.unlink(missing_ok=True)
                except FileNotFoundError:
                    pass
                continue
            with os.fdopen(fd, "w") as fh:
                json.dump(self._owner_record(), fh)
                fh.flush()
                os.fsync(fh.fileno())
            self.owned = True
            return
        raise RunLocked(f"could not lock {self.path.parent.name!r}: another process keeps taking the lock")

    def _mtime(self) -> float:
        try:
            return self.path.stat().st_mtime
        except OSError:
            return 0.0

    def release(self) -> None:
        if self.owned:
            self.path.unlink(missing_ok=True)
            self.owned = False

    def __enter__(self) -> "RunLock":
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
