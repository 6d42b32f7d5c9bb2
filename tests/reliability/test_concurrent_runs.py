"""Two runs on one output directory: the second is refused by the lock; a dead run's lock is recovered.

Real ``relfactory label`` processes: one is held mid-run by an injected slow step
while another starts; one is SIGKILLed and leaves its lock behind.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

from pipeline.label import run_label
from tests.reliability.helpers import (
    cli_label,
    demo_cfg,
    demo_config,
    part_files,
    start_cli_label,
    write_config,
)

RUN = "run"
N_UNITS = 5 * 3  # five stages after ingest, three parts


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    cfg = demo_cfg(tmp_path_factory.mktemp("reference"), name=RUN)
    run_label(cfg)
    return cfg.run_dir


def _wait_for(path: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def _computed(stdout: str) -> int:
    found = re.search(r"computed (\d+)\b", stdout)
    return int(found.group(1)) if found else 0


@pytest.mark.slow
def test_second_run_is_refused_while_the_first_holds_the_lock(tmp_path, reference):
    config = write_config(tmp_path / "run.json", demo_config(tmp_path / "out", name=RUN))
    other = write_config(tmp_path / "other.json", demo_config(tmp_path / "out", name=RUN, tag={"eta": 0.5}))
    run_dir = tmp_path / "out" / RUN
    first = start_cli_label(config, faults="before_compute:caption:0=sleep-6")
    try:
        _wait_for(run_dir / ".lock")
        for cfg_file in (config, other):  # the same run again, or another config on the same directory
            second = cli_label(cfg_file)
            assert second.returncode == 1
            assert f"is in use by pid {first.pid}" in second.stderr and "Traceback" not in second.stderr, second.stderr
        out, err = first.communicate(timeout=120)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0, err
    assert _computed(out) == N_UNITS
    assert part_files(run_dir) == part_files(reference), "the refused runs wrote nothing"
    again = cli_label(config)
    assert again.returncode == 0 and "up to date" in again.stdout


@pytest.mark.slow
def test_runs_started_together_compute_every_part_exactly_once(tmp_path, reference):
    config = write_config(tmp_path / "run.json", demo_config(tmp_path / "out", name=RUN))
    procs = [start_cli_label(config) for _ in range(2)]
    outputs = [p.communicate(timeout=180) for p in procs]
    codes = [p.returncode for p in procs]
    for code, (out, err) in zip(codes, outputs):
        assert code in (0, 1), err
        if code == 1:
            assert "is in use by pid" in err and "Traceback" not in err, err
    assert 0 in codes
    assert sum(_computed(out) for out, _ in outputs) == N_UNITS, "a part was computed twice, or never"
    assert part_files(tmp_path / "out" / RUN) == part_files(reference)


@pytest.mark.slow
def test_lock_of_a_killed_run_is_recovered_by_the_next(tmp_path, reference):
    config = write_config(tmp_path / "run.json", demo_config(tmp_path / "out", name=RUN))
    run_dir = tmp_path / "out" / RUN
    killed = cli_label(config, faults="after_marker_written:tag:1=kill")
    assert killed.returncode == -9
    assert (run_dir / ".lock").exists(), "a SIGKILLed run cannot release its lock"
    stale_pid = int(re.search(r'"pid": (\d+)', (run_dir / ".lock").read_text()).group(1))
    with pytest.raises(ProcessLookupError):
        os.kill(stale_pid, 0)
    resumed = cli_label(config)
    assert resumed.returncode == 0, resumed.stderr
    assert 0 < _computed(resumed.stdout) < N_UNITS, "only the uncommitted parts are redone"
    assert not (run_dir / ".lock").exists()
    assert part_files(run_dir) == part_files(reference)
