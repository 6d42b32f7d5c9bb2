"""The run lock under races: one writer per run directory, and stale locks recovered safely."""

from __future__ import annotations

import json
import multiprocessing
import os
import socket
import threading
import time

import pytest

from pipeline.lock import RunLock, RunLocked, _process_start_ticks


def _dead_pid() -> int:
    proc = multiprocessing.get_context("fork").Process(target=os._exit, args=(0,))
    proc.start()
    proc.join()
    return proc.pid


def _write_lock(run_dir, **owner) -> None:
    record = {"host": socket.gethostname(), "pid": _dead_pid(), "start": "1", "since": time.time() - 60, **owner}
    (run_dir / ".lock").write_text(json.dumps(record))


def test_two_recoverers_of_one_stale_lock_cannot_both_win(tmp_path, monkeypatch):
    """Both see the same dead owner; the slower one must not remove the faster one's fresh lock.

    The interleaving is forced: each thread judges the lock stale, waits until both have,
    then the second waits until the first holds the lock before it acts on its (now wrong) judgement.
    """
    _write_lock(tmp_path)
    judged = threading.Barrier(2, timeout=10)
    first_done = threading.Event()
    order: list[str] = []
    real_is_stale = RunLock._is_stale
    seen_threads: set[int] = set()

    def is_stale(self, owner):
        verdict = real_is_stale(self, owner)
        me = threading.get_ident()
        if me not in seen_threads:  # only the first judgement of each thread is delayed
            seen_threads.add(me)
            judged.wait()
            with lock_guard:
                order.append(threading.current_thread().name)
                is_first = len(order) == 1
            if not is_first:
                first_done.wait(10)
        return verdict

    lock_guard = threading.Lock()
    monkeypatch.setattr(RunLock, "_is_stale", is_stale)
    outcome: dict[str, object] = {}

    def contend(name: str) -> None:
        lk = RunLock(tmp_path)
        try:
            lk.acquire()
            outcome[name] = lk
        except RunLocked as exc:
            outcome[name] = exc
        finally:
            if order and order[0] == name:
                first_done.set()

    threads = [threading.Thread(target=contend, args=(n,), name=n) for n in ("A", "B")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    winners = [n for n, v in outcome.items() if isinstance(v, RunLock)]
    assert len(outcome) == 2
    assert len(winners) == 1, f"both recoverers took the lock: {outcome}"
    loser = ({"A", "B"} - set(winners)).pop()
    assert "in use by pid" in str(outcome[loser])
    assert json.loads((tmp_path / ".lock").read_text())["pid"] == os.getpid()
    outcome[winners[0]].release()
    assert not (tmp_path / ".lock").exists()


def test_lock_of_a_reused_pid_is_recovered(tmp_path):
    """A live process with the owner's pid but another start time is not the owner."""
    _write_lock(tmp_path, pid=os.getppid(), start="not-its-start-time")
    with RunLock(tmp_path) as lk:
        assert lk.owned


def test_lock_of_a_live_owner_is_refused_and_named(tmp_path):
    _write_lock(tmp_path, pid=os.getppid(), start=_process_start_ticks(os.getppid()))
    with pytest.raises(RunLocked) as info:
        RunLock(tmp_path).acquire()
    message = str(info.value)
    assert f"pid {os.getppid()}" in message and socket.gethostname() in message
    assert str(tmp_path) not in message, "the message names the run, not the machine path"


@pytest.mark.parametrize("content", ["", "{not json", "[]", '"a string"'])
def test_old_garbage_lock_is_recovered(tmp_path, content):
    path = tmp_path / ".lock"
    path.write_text(content)
    old = time.time() - 60
    os.utime(path, (old, old))
    with RunLock(tmp_path) as lk:
        assert lk.owned
        assert json.loads(path.read_text())["pid"] == os.getpid()


def test_lock_record_without_a_host_is_never_stolen(tmp_path):
    """Without a host it cannot be checked; refusing (with how to clear it) is the safe side."""
    (tmp_path / ".lock").write_text('{"pid": "abc"}')
    with pytest.raises(RunLocked, match="delete .lock"):
        RunLock(tmp_path).acquire()


def test_fresh_empty_lock_is_not_stolen(tmp_path):
    """An empty lock younger than a few seconds may be an owner between creating and filling it."""
    (tmp_path / ".lock").write_text("")
    with pytest.raises(RunLocked):
        RunLock(tmp_path).acquire()
    assert (tmp_path / ".lock").read_text() == ""


def test_release_never_removes_someone_elses_lock(tmp_path):
    lk = RunLock(tmp_path)
    lk.acquire()
    other = {"host": socket.gethostname(), "pid": os.getppid(), "start": _process_start_ticks(os.getppid())}
    (tmp_path / ".lock").write_text(json.dumps(other))  # e.g. an operator reassigned the run
    lk.release()
    assert json.loads((tmp_path / ".lock").read_text())["pid"] == os.getppid()


def test_the_lock_never_exists_half_written(tmp_path):
    """A reader polling the lock sees either no lock or a complete owner record, never an empty file."""
    stop = threading.Event()
    partial: list[str] = []
    reads = [0]

    def poll() -> None:
        while not stop.is_set():
            try:
                text = (tmp_path / ".lock").read_text()
            except FileNotFoundError:
                continue
            reads[0] += 1
            try:
                json.loads(text)["pid"]
            except (ValueError, KeyError):
                partial.append(text)

    reader = threading.Thread(target=poll)
    reader.start()
    try:
        for _ in range(300):
            with RunLock(tmp_path):
                pass
    finally:
        stop.set()
        reader.join()
    assert reads[0] > 0 and not partial, f"{len(partial)} of {reads[0]} reads saw a half-written lock"
