"""SIGKILL the whole run at randomised points, resume, and get byte-identical output.

Kill points are drawn with a fixed seed from every place ``pipeline.faults`` can
stop a run (inside each stage, between a part's files and its commit marker,
inside the atomic rename of every file, during the manifest update), plus kills
at random times. Each is a real SIGKILL of the process holding the lock and
writing the parts; the resumed run must recover the stale lock, redo only what
was not committed, and end with every part and error file byte-for-byte equal
to an uninterrupted run's.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.reliability.helpers import (
    PROJECT_ROOT,
    assert_committed_parts_intact,
    cli_label,
    demo_config,
    part_files,
    shard_rows,
    start_cli_label,
    subprocess_env,
    write_config,
)
from tests.reliability.kill_points import kill_chains

SEED = 20_231_001
N_CHAINS, KILLS_PER_CHAIN = 6, 4  # 24 injected kill points
N_TIMED_CHAINS = 4  # each killed twice at random moments
RUN = "run"
N_PARTS = 3  # 6 demo images, 2 per part


def _manifest_stages(run_dir: Path) -> dict:
    return json.loads((run_dir / "manifest.json").read_text())["stages"]


def _assert_same_as_reference(run_dir: Path, reference: Path) -> None:
    expected = part_files(reference)
    got = part_files(run_dir)
    assert sorted(got) == sorted(expected), "a part or error file is missing or extra"
    different = [name for name in expected if got[name] != expected[name]]
    assert not different, f"not byte-identical after resume: {different}"
    assert_committed_parts_intact(run_dir)
    assert _manifest_stages(run_dir) == _manifest_stages(reference)
    assert not (run_dir / ".lock").exists(), "the finished run left its lock behind"
    leftovers = [str(p.relative_to(run_dir)) for p in run_dir.rglob("*.tmp")]
    assert not leftovers, f"temp files of killed writes were never cleaned: {leftovers}"


@pytest.mark.slow
def test_randomised_kill_points_resume_to_identical_output(tmp_path):
    rng = random.Random(SEED + 2)
    chains = kill_chains(N_PARTS, RUN, N_CHAINS, KILLS_PER_CHAIN, SEED)
    plan = {"reference": demo_config(tmp_path / "reference", name=RUN), "chains": []}
    for i, chain in enumerate(chains):
        runs = [{"faults": point.fault} for point in chain] + [{"faults": None}]
        plan["chains"].append({"config": demo_config(tmp_path / f"chain{i}", name=RUN), "runs": runs})
    for i in range(N_TIMED_CHAINS):
        # Killed twice at random moments (a few ms after the k-th commit, so inside some unit), then resumed.
        runs = [{"kill_after_commits": rng.randint(1, 12), "jitter": round(rng.uniform(0.0, 0.02), 4)},
                {"kill_after_commits": rng.randint(1, 2), "jitter": round(rng.uniform(0.0, 0.02), 4)},
                {"faults": None}]
        plan["chains"].append({"config": demo_config(tmp_path / f"timed{i}", name=RUN), "runs": runs})
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps(plan))
    results_file = tmp_path / "results.json"
    proc = subprocess.run([sys.executable, "-m", "tests.reliability.forkrun", str(plan_file), str(results_file)],
                          cwd=PROJECT_ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-4000:]
    results = json.loads(results_file.read_text())

    reference = tmp_path / "reference" / RUN
    ref_rows = shard_rows(reference)
    assert [r["image_id"] for r in ref_rows] == [1, 2, 3, 4, 5, 6]
    assert sum(len(r["relationships"]) for r in ref_rows) > 0

    fault_kills = timer_kills = stale_locks = 0
    for chain, runs in zip(chains, results["chains"]):
        for point, run in zip(chain, runs[:-1]):
            assert run["outcome"] == "fault_kill" and run["signal"] == signal.SIGKILL, \
                (point.rule, run, proc.stderr[-3000:])
        fault_kills += len(chain)
    for runs in results["chains"][N_CHAINS:]:
        assert all(run["outcome"] in {"timer_kill", "completed"} for run in runs[:-1]), runs
        timer_kills += sum(run["outcome"] == "timer_kill" for run in runs)
    for name, runs in zip([f"chain{i}" for i in range(N_CHAINS)] + [f"timed{i}" for i in range(N_TIMED_CHAINS)],
                          results["chains"]):
        assert runs[-1]["outcome"] == "completed", (name, runs[-1], proc.stderr[-3000:])
        kills = sum(run["outcome"].endswith("_kill") for run in runs)
        stale_locks += sum(run["lock_before"] for run in runs)
        assert sum(run["lock_before"] for run in runs) == kills, f"{name}: a killed run's lock was not left behind"
        _assert_same_as_reference(tmp_path / name / RUN, reference)
    assert fault_kills >= 20 and timer_kills >= N_TIMED_CHAINS
    print(f"\nkill/resume: {fault_kills} injected kills over {N_CHAINS} chains + {timer_kills} kills at random "
          f"times over {N_TIMED_CHAINS} chains; {stale_locks} stale locks recovered; all "
          f"{N_CHAINS + N_TIMED_CHAINS} resumed runs byte-identical to the reference "
          f"(warm run {results['warm_child_seconds']} s)")


@pytest.mark.slow
def test_cli_killed_mid_run_resumes_to_identical_output(tmp_path):
    """A fresh interpreter, as on a cluster: ``relfactory label`` SIGKILLed while labelling, then run again."""
    reference_config = write_config(tmp_path / "reference.json", demo_config(tmp_path / "reference", name=RUN))
    assert cli_label(reference_config).returncode == 0
    config = write_config(tmp_path / "run.json", demo_config(tmp_path / "out", name=RUN))
    run_dir = tmp_path / "out" / RUN
    proc = start_cli_label(config)
    try:
        deadline = time.monotonic() + 120
        while not (run_dir / "caption" / "_markers" / "part-00000.json").exists():  # models loaded, labelling under way
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.01)
        time.sleep(random.Random(SEED + 1).uniform(0.0, 0.3))
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL, "the run finished before the kill: nothing was tested"
    resumed = cli_label(config)
    assert resumed.returncode == 0, resumed.stderr
    _assert_same_as_reference(run_dir, tmp_path / "reference" / RUN)
