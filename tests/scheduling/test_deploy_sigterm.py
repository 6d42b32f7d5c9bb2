"""``relfactory deploy`` stops cleanly on SIGTERM (``docker stop``, process supervisors) mid-run."""

from __future__ import annotations

import json
import os
import signal
import subprocess

import pytest

from tests.scheduling.real_server import stop_process_group
from tests.scheduling.served import deployment_runs, start_deploy, wait_for

RUN_STARTED_TIMEOUT_S = 360
# --stop-grace 1, then SIGTERM/SIGKILL to the run with 3 s between, then the API calls of shutdown.
EXIT_TIMEOUT_S = 60


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow
def test_sigterm_abandons_the_run_in_progress_releases_its_lock_and_exits(real_prefect_server, tmp_path):
    server = real_prefect_server
    name = "sigterm-mid-run"
    # The tag stage sleeps: the run holds its lock, in the middle of its work, until it is stopped.
    env = server.client_env(tmp_path / "client-home", RELFACTORY_FAULTS="before_compute:tag=sleep-600")
    proc, log_path = start_deploy(server, tmp_path, name, 10, "--stop-grace", "1", env=env)
    lock = tmp_path / "runs" / "demo" / ".lock"
    try:
        def running_with_lock():
            running = [r for r in deployment_runs(server, name) if r.state_type.value == "RUNNING"]
            # A committed match part: the run is past match and waiting in tag (committed parts are the visible ones).
            committed = any((lock.parent / "match").glob("part-*.parquet"))
            return running if running and lock.exists() and committed else None

        run = wait_for("a scheduled run holding the run lock, past match", running_with_lock, RUN_STARTED_TIMEOUT_S,
                       proc, log_path, server)[0]
        run_pid = json.loads(lock.read_text())["pid"]

        proc.send_signal(signal.SIGTERM)  # to the deploy process only, as `docker stop` does
        try:
            exit_code = proc.wait(EXIT_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"relfactory deploy still running {EXIT_TIMEOUT_S} s after SIGTERM:\n"
                        + log_path.read_text(errors="replace")[-3000:])
    finally:
        stop_process_group(proc)

    log = log_path.read_text(errors="replace")
    assert exit_code == 0, log[-3000:]
    assert not _pid_alive(run_pid), "the flow run's process outlived the deploy process"
    assert not lock.exists(), "the stopped run's lock was left behind"
    assert "released the lock of the stopped run" in log
    stopped = next(r for r in deployment_runs(server, name) if r.id == run.id)
    assert stopped.state_type.value == "CANCELLED"
    assert "SIGTERM" in stopped.state.message
    from prefect.client.orchestration import SyncPrefectClient

    with SyncPrefectClient(server.url) as client:
        assert client.read_deployment_by_name(f"pseudo_label/{name}").paused  # no runs pile up meanwhile
    # The abandoned run kept what it had committed: the stages before tag are complete and reusable.
    assert any((tmp_path / "runs" / "demo" / "match").glob("part-*.parquet"))
