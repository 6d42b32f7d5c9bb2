"""The fault-injection hooks the suite relies on do what their rules say, and nothing without them."""

from __future__ import annotations

import errno
import multiprocessing
import os
import time

import pytest

from pipeline.faults import ENV, STATE_ENV, InjectedFault, maybe_fault


def test_without_the_variable_nothing_happens(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    maybe_fault("before_compute", "tag", 1)


@pytest.mark.parametrize("rule, hits, misses", [
    ("before_compute:tag:1=raise", [("tag", 1)], [("tag", 0), ("parse", 1)]),
    ("before_compute:tag=raise", [("tag", 0), ("tag", 2)], [("parse", 0)]),
    ("before_compute=raise", [("tag", 0), ("shard", 9)], []),
])
def test_rules_match_point_stage_and_part(monkeypatch, rule, hits, misses):
    monkeypatch.setenv(ENV, rule)
    for stage, part in hits:
        with pytest.raises(InjectedFault):
            maybe_fault("before_compute", stage, part)
    for stage, part in misses:
        maybe_fault("before_compute", stage, part)
    maybe_fault("after_rows_written", "tag", 1)


def test_disk_actions_raise_the_os_errors_a_real_disk_does(monkeypatch):
    monkeypatch.setenv(ENV, "before_rename:tag/part-00001.parquet=enospc;before_rename:tag/part-00001.done=eacces")
    with pytest.raises(OSError) as full:
        maybe_fault("before_rename", "tag/part-00001.parquet")
    assert full.value.errno == errno.ENOSPC
    with pytest.raises(PermissionError):
        maybe_fault("before_rename", "tag/part-00001.done")


def test_sleep_holds_the_caller(monkeypatch):
    monkeypatch.setenv(ENV, "before_compute:tag:0=sleep-0.2")
    started = time.perf_counter()
    maybe_fault("before_compute", "tag", 0)
    assert time.perf_counter() - started >= 0.2


def test_a_typo_in_an_action_is_an_error_not_a_silent_pass(monkeypatch):
    monkeypatch.setenv(ENV, "before_compute=kil")
    with pytest.raises(ValueError, match="unknown fault action 'kil'"):
        maybe_fault("before_compute", "tag", 0)


def _reach(barrier, results) -> None:
    barrier.wait()
    try:
        maybe_fault("before_compute", "tag", 1)
        results.put("passed")
    except InjectedFault:
        results.put("fired")


def test_once_fires_for_exactly_one_of_many_racing_processes(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV, "before_compute:tag:1=raise/once")
    monkeypatch.setenv(STATE_ENV, str(tmp_path))
    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(4), ctx.Queue()
    procs = [ctx.Process(target=_reach, args=(barrier, results)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    outcomes = sorted(results.get(timeout=5) for _ in procs)
    assert outcomes == ["fired", "passed", "passed", "passed"]
    maybe_fault("before_compute", "tag", 1)  # spent: later attempts pass


def test_once_without_a_state_folder_is_an_error(monkeypatch):
    monkeypatch.setenv(ENV, "before_compute=exit/once")
    monkeypatch.delenv(STATE_ENV, raising=False)
    with pytest.raises(RuntimeError, match=STATE_ENV):
        maybe_fault("before_compute", "tag", 0)
    assert os.getpid()  # still alive: the misconfigured rule did not exit the process
