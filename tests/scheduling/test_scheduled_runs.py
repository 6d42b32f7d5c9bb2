"""End to end: the real Prefect server's scheduler creates runs of a served deployment, and they complete.

This is what a user of ``relfactory deploy`` relies on, and what broke silently when
the lock pinned a SQLAlchemy the server's scheduler does not support (issue 16).
"""

from __future__ import annotations

import json
import signal

import pyarrow.parquet as pq
import pytest

from tests.scheduling.real_server import stop_process_group
from tests.scheduling.served import deployment_runs, start_deploy, wait_for

# Server start-up is in the fixture; this covers deploy start-up, the scheduler's
# first loop and one demo run in a child process, measured at ~60 s on a busy 2-core box.
RUN_COMPLETED_TIMEOUT_S = 360
STOP_TIMEOUT_S = 60


@pytest.mark.slow
def test_scheduled_run_of_the_demo_completes_on_a_real_server(real_prefect_server, tmp_path):
    server = real_prefect_server
    proc, log_path = start_deploy(server, tmp_path, "every-10s", 10)
    try:
        def completed():
            return [r for r in deployment_runs(server, "every-10s") if r.state_type.value == "COMPLETED"]

        runs = wait_for("a scheduled run reaching COMPLETED", completed, RUN_COMPLETED_TIMEOUT_S,
                        proc, log_path, server)
        assert all(r.auto_scheduled for r in runs), "the runs should come from the server's scheduler"
        proc.send_signal(signal.SIGINT)  # Ctrl-C: the same clean stop as SIGTERM (tested mid-run elsewhere)
        exit_code = proc.wait(STOP_TIMEOUT_S)
    finally:
        stop_process_group(proc)

    manifest = json.loads((tmp_path / "runs" / "demo" / "manifest.json").read_text())
    assert manifest["stages"]["shard"]["state"] == "complete"
    shard_parts = (tmp_path / "runs" / "demo" / "shard").glob("part-*.parquet")
    shard_rows = sum(pq.read_metadata(f).num_rows for f in shard_parts)
    assert shard_rows == 6  # the six demo photos
    log = log_path.read_text(errors="replace")
    assert exit_code == 0 and "SIGINT: no new runs" in log, log[-3000:]
    assert not (tmp_path / "runs" / "demo" / ".lock").exists()
    # The 2.1 breakage showed only here: the scheduler service logged the same error every loop.
    errors = server.scheduler_errors()
    assert not errors, "scheduler errors in the server log:\n" + "\n".join(errors[-3:])
