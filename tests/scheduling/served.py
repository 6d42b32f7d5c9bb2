"""``relfactory deploy`` as a real subprocess, and what the server knows about its runs."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

from tests.conftest import PROJECT_ROOT
from tests.scheduling.real_server import RealPrefectServer


def start_deploy(server: RealPrefectServer, tmp_path: Path, name: str, interval_s: float, *extra: str,
                 env: dict[str, str] | None = None) -> tuple[subprocess.Popen, Path]:
    """Serve the demo labelling deployment (oracle captions, local executor) into ``tmp_path/runs/demo``."""
    log_path = tmp_path / f"deploy-{name}.log"
    command = [sys.executable, "-m", "pipeline.cli", "deploy", "--dataset-kind", "demo", "--captioner", "oracle",
               "--executor", "local", "--output", str(tmp_path / "runs"), "--run", "demo",
               "--interval", str(interval_s), "--deployment-name", name, *extra]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(command, cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True,
                                env=env or server.client_env(tmp_path / "client-home"))
    return proc, log_path


def deployment_runs(server: RealPrefectServer, name: str) -> list[Any]:
    """Every flow run of the deployment ``pseudo_label/<name>``, newest expected start first."""
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName

    with SyncPrefectClient(server.url) as client:
        return client.read_flow_runs(deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[name])))


def wait_for(what: str, probe: Callable[[], Any], timeout_s: float, proc: subprocess.Popen, log_path: Path,
             server: RealPrefectServer) -> Any:
    """Poll ``probe`` until it returns something truthy; fail with both logs if it never does.

    Fails at once when the deploy process exits or the server logs an error (a
    broken scheduler logs one every loop), instead of waiting out the timeout.
    """
    deadline = time.monotonic() + timeout_s
    why = f"not within {timeout_s} s"
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        if proc.poll() is not None:
            why = "relfactory deploy exited"
            break
        if server.scheduler_errors():
            why = "the server's scheduler logged an error"
            break
        time.sleep(2)
    raise AssertionError(
        f"{what}: {why} (deploy exit code {proc.poll()})\n"
        f"--- relfactory deploy log ---\n{log_path.read_text(errors='replace')[-4000:]}\n"
        f"--- server errors ---\n" + "\n\n".join(server.error_records()[-5:])[-6000:])
