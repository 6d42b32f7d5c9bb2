"""On Ray: a worker that dies mid-task is replaced and its task re-run; a task's full disk stops the run clearly.

One driver process starts Ray once and labels twice. In the first run two
workers die (``os._exit``) for one attempt each: once before a tag part is
computed, once between a parse part's rows file and its commit marker. Ray's task
retry must finish the run with output identical to an uninterrupted one. In the
second run a task hits ENOSPC: the driver must stop with the one-line message,
not Ray's wrapped traceback, leave no task writing after it lets go of the lock,
and a plain re-run must complete the job.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from pipeline.label import run_label
from tests.reliability.helpers import (
    PROJECT_ROOT,
    assert_committed_parts_intact,
    demo_cfg,
    demo_config,
    describe_run,
    part_files,
    subprocess_env,
    write_config,
)

DRIVER = """
import json, sys
from pipeline.cli import main
codes = [main(["label", "--config", path, "--orchestrator", "none"]) for path in sys.argv[1:]]
print("EXIT CODES", json.dumps(codes))
"""
FAULTS = ";".join([
    "before_compute:tag:1=exit/once",  # a worker dies inside a stage
    "after_rows_written:parse:0=exit/once",  # ... and between a part's rows file and its marker
    "before_rename:shard/part-00002.parquet=enospc",  # only the second run has a part 2 (3 parts of 2 images)
])


@pytest.mark.slow
def test_worker_deaths_are_retried_and_a_full_disk_stops_cleanly(tmp_path):
    ray = pytest.importorskip("ray")
    del ray
    deaths_cfg = demo_config(tmp_path / "ray", name="deaths", executor="ray", workers=2, part_size=3)
    full_cfg = demo_config(tmp_path / "ray", name="full", executor="ray", workers=2, part_size=2)
    files = [write_config(tmp_path / f"{c['name']}.json", c) for c in (deaths_cfg, full_cfg)]
    state = tmp_path / "fault-state"
    state.mkdir()
    done = subprocess.run([sys.executable, "-c", DRIVER, *map(str, files)], cwd=PROJECT_ROOT, timeout=300,
                          env=subprocess_env(FAULTS, state), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-4000:]
    codes = json.loads(done.stdout.split("EXIT CODES", 1)[1].splitlines()[0])
    assert codes == [0, 1], done.stderr[-4000:]
    assert sorted(p.name for p in state.iterdir()) == ["fired-after_rows_written_parse_0", "fired-before_compute_tag_1"]

    deaths_dir = tmp_path / "ray" / "deaths"
    reference = demo_cfg(tmp_path / "reference", name="deaths", part_size=3)
    run_label(reference)
    assert part_files(deaths_dir) == part_files(reference.run_dir), "Ray's retries changed the output"
    assert_committed_parts_intact(deaths_dir)

    assert "no space left on the output device" in done.stderr
    assert "RayTaskError" not in done.stderr and "Traceback" not in done.stderr, done.stderr[-4000:]
    full_dir = tmp_path / "ray" / "full"
    after = describe_run(full_dir)
    assert after["intact"] is True and not after["lock"], after
    assert not (full_dir / "shard" / "_markers" / "part-00002.json").exists()

    resumed = demo_cfg(tmp_path / "ray", name="full")  # same keys; the executor is not part of them
    _, manifest = run_label(resumed)
    assert manifest["this_invocation"]["parts_computed"] < 15, "committed parts were kept"
    reference_full = demo_cfg(tmp_path / "reference", name="full")
    run_label(reference_full)
    assert part_files(full_dir) == part_files(reference_full.run_dir)
