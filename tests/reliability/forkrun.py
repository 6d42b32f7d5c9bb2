"""Run the labelling pipeline again and again in forked children of one warm process, killing some.

    python -m tests.reliability.forkrun PLAN.json RESULTS.json

``PLAN`` is ``{"reference": config | null, "chains": [{"config": ..., "runs": [run, ...]}, ...]}``
where a run is ``{"faults": "point:stage:part=kill" | null, "kill_after_commits": k | null, "jitter": s}``:
with ``k`` the parent SIGKILLs the child ``s`` seconds after it committed its k-th part, a random
moment in the middle of labelling whatever the machine's speed.
The parent imports the pipeline and, by doing the reference run itself, warms
every per-process cache (caption files, spaCy, vocabularies), so each child
starts labelling at once, as a long-lived worker would. A child *is* the whole
run: it takes the lock, writes parts and the manifest, and a SIGKILL (an
injected fault, or the parent's timer) ends it with no cleanup at all. Chains
share nothing but the warm parent; the runs of one chain resume each other.
"""

from __future__ import annotations

import os

# Before torch/numpy load: forked children must not inherit a live OpenMP pool.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import json  # noqa: E402
import logging  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from pipeline.config import load_config  # noqa: E402
from pipeline.faults import ENV as FAULTS_ENV  # noqa: E402
from pipeline.label import run_label  # noqa: E402


def _child(config: dict[str, Any], faults: str | None) -> None:
    try:
        if faults:
            os.environ[FAULTS_ENV] = faults
        else:
            os.environ.pop(FAULTS_ENV, None)
        run_label(load_config(config))
    except BaseException:  # noqa: BLE001 - reported through the exit status
        traceback.print_exc()
        sys.stderr.flush()
        os._exit(3)
    os._exit(0)


def _commits(run_dir: Path) -> int:
    return sum(1 for _ in run_dir.glob("*/_markers/part-*.json"))


def run_once(config: dict[str, Any], faults: str | None = None, kill_after_commits: int | None = None,
             jitter: float = 0.0) -> dict[str, Any]:
    """One run in a forked child; SIGKILLed by the parent once it has committed ``kill_after_commits`` parts."""
    sys.stdout.flush()
    sys.stderr.flush()
    run_dir = Path(config["output"]) / config["name"]
    lock_before = (run_dir / ".lock").exists()  # a killed run's stale lock
    commits_before = _commits(run_dir) if run_dir.exists() else 0
    started = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        _child(config, faults)
    kill_at: float | None = None
    timer_killed = False
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        now = time.perf_counter()
        if kill_after_commits is not None and kill_at is None and \
                _commits(run_dir) - commits_before >= kill_after_commits:
            kill_at = now + jitter
        if kill_at is not None and not timer_killed and now >= kill_at:
            os.kill(pid, signal.SIGKILL)
            timer_killed = True
        time.sleep(0.001)
    report = {"seconds": round(time.perf_counter() - started, 3), "faults": faults,
              "kill_after_commits": kill_after_commits, "jitter": jitter, "lock_before": lock_before,
              "commits": _commits(run_dir) - commits_before}
    if os.WIFSIGNALED(status):
        return {**report, "outcome": "timer_kill" if timer_killed else "fault_kill", "signal": os.WTERMSIG(status)}
    return {**report, "outcome": "completed" if os.WEXITSTATUS(status) == 0 else "failed",
            "code": os.WEXITSTATUS(status)}


def main(plan_file: str, results_file: str) -> int:
    logging.basicConfig(level=logging.ERROR)
    plan = json.loads(Path(plan_file).read_text())
    results: dict[str, Any] = {"reference_seconds": None, "chains": []}
    if plan.get("reference"):
        started = time.perf_counter()
        run_label(load_config(plan["reference"]))  # in the parent: warms the caches the children inherit
        results["reference_seconds"] = round(time.perf_counter() - started, 3)
        # A second, forked reference run measures what a warm child takes.
        warm = {**plan["reference"], "name": plan["reference"]["name"] + "-warm"}
        results["warm_child_seconds"] = run_once(warm)["seconds"]
    for chain in plan["chains"]:
        results["chains"].append([run_once(chain["config"], run.get("faults"), run.get("kill_after_commits"),
                                           run.get("jitter", 0.0)) for run in chain["runs"]])
    Path(results_file).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
