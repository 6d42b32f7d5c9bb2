"""A real ``prefect server start`` process for scheduling tests, on a free loopback port.

The session's shared server (tests/conftest.py ``prefect_server``) is an in-process
helper for flow runs; scheduling needs the real thing: the server's own scheduler
service, its own SQLite database in a temporary ``PREFECT_HOME``, and a log we can
search for scheduler errors. Everything it starts runs in its own process group,
so stopping it leaves nothing behind.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tests.net import free_loopback_port

# A busy 2-core machine needs ~25 s to import the server and migrate its database; an idle one ~8 s.
SERVER_START_TIMEOUT_S = 300
# Scheduler loop for tests: new deployments get runs within seconds (Prefect's default loop is 60 s).
SCHEDULER_LOOP_S = 5
# The start of a server log record: "08:51:05.385 | ERROR   | docket.dependencies - ...".
_RECORD_START = re.compile(r"^\d\d:\d\d:\d\d\.\d+ \| (\w+)\s*\|")
# SQLite under load on a busy machine; the service that met it retries on its next loop.
TRANSIENT_ERRORS = ("database is locked",)


@dataclass
class RealPrefectServer:
    url: str  # the API URL, ending in /api
    home: Path
    log_path: Path

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def error_records(self) -> list[str]:
        """Each ERROR record of the log with the traceback that follows it."""
        records: list[list[str]] = []
        for line in self.log_text().splitlines():
            start = _RECORD_START.match(line)
            if start:
                records.append([line] if start.group(1) in ("ERROR", "CRITICAL") else [])
            elif records and records[-1]:
                records[-1].append(line)
            elif line.startswith("Traceback"):  # printed outside a log record
                records.append([line])
        return ["\n".join(r) for r in records if r]

    def scheduler_errors(self) -> list[str]:
        """Errors of the scheduler service (its task is ``schedule_deployments``), transient ones left out."""
        return [r for r in self.error_records()
                if "schedul" in r.lower() and not any(t in r for t in TRANSIENT_ERRORS)]

    def client_env(self, home: Path, **extra: str) -> dict[str, str]:
        """Environment for a process (``relfactory deploy``, ``doctor``) that talks to this server."""
        env = _base_env()
        env.update(PREFECT_API_URL=self.url, PREFECT_HOME=str(home), PYTHONUNBUFFERED="1",
                   PREFECT_RUNNER_POLL_FREQUENCY="2")  # the served process looks for due runs every 2 s
        env.update(extra)
        return env


def _base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API_")}
    env.update(PREFECT_SERVER_ANALYTICS_ENABLED="false", RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0")
    return env


def start_server(home: Path) -> tuple[subprocess.Popen, RealPrefectServer]:
    """Start the server and wait for its health check; a port taken meanwhile gets one more try."""
    home.mkdir(parents=True, exist_ok=True)
    for attempt in (1, 2):
        proc, server = _launch(home, free_loopback_port())
        try:
            wait_healthy(proc, server, SERVER_START_TIMEOUT_S)
            return proc, server
        except RuntimeError:
            stop_process_group(proc)
            if attempt == 1 and "already in use" in server.log_text().lower():  # prefect's own port check
                continue
            raise
        except BaseException:
            stop_process_group(proc)
            raise
    raise AssertionError("unreachable")


def _launch(home: Path, port: int) -> tuple[subprocess.Popen, RealPrefectServer]:
    env = _base_env()
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_API_DATABASE_CONNECTION_URL=f"sqlite+aiosqlite:///{home / 'prefect.db'}",
        PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS=str(SCHEDULER_LOOP_S),
        PREFECT_LOGGING_SERVER_LEVEL="INFO",
    )
    log_path = home / "server.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port),
             "--no-ui"],
            env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )
    return proc, RealPrefectServer(url=f"http://127.0.0.1:{port}/api", home=home, log_path=log_path)


def wait_healthy(proc: subprocess.Popen, server: RealPrefectServer, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"prefect server exited with {proc.returncode} before it was healthy; "
                               f"log:\n{server.log_text()[-4000:]}")
        try:
            with urllib.request.urlopen(f"{server.url}/health", timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(1)
    raise TimeoutError(f"prefect server not healthy after {timeout_s} s at {server.url}; "
                       f"log:\n{server.log_text()[-4000:]}")


def stop_process_group(proc: subprocess.Popen, timeout_s: float = 30) -> int | None:
    """SIGTERM the process's group, SIGKILL it if it lingers; returns the exit code."""
    for sig, wait_s in ((signal.SIGTERM, timeout_s), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            return proc.wait(wait_s)
        except subprocess.TimeoutExpired:
            continue
    return proc.poll()
