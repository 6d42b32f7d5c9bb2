from __future__ import annotations

import json
import multiprocessing
import os
import socket

import pytest

from pipeline.lock import RunLock, RunLocked


def test_second_holder_is_refused(tmp_path):
    with RunLock(tmp_path):
        with pytest.raises(RunLocked, match="in use by pid"):
            RunLock(tmp_path).acquire()
    RunLock(tmp_path).acquire()  # released: free again


def _hold_lock_then_die(run_dir: str) -> None:
    RunLock(run_dir).acquire()
    os._exit(0)  # dies without releasing


def test_stale_lock_of_dead_process_is_recovered(tmp_path):
    proc = multiprocessing.get_context("fork").Process(target=_hold_lock_then_die, args=(str(tmp_path),))
    proc.start()
    proc.join()
    assert (tmp_path / ".lock").exists()
    with RunLock(tmp_path) as lock:
        assert lock.owned
        assert json.loads((tmp_path / ".lock").read_text())["pid"] == os.getpid()


def test_lock_from_another_host_is_never_stolen(tmp_path):
    (tmp_path / ".lock").write_text(json.dumps({"host": socket.gethostname() + "-other", "pid": 1}))
    with pytest.raises(RunLocked):
        RunLock(tmp_path).acquire()
