"""A real two-node Ray cluster on this machine: the second node dies mid-run and the run still finishes identically.

``ray start --head`` (1 CPU) and ``ray start --address`` (2 CPUs, a custom
resource) are started as separate process groups with their own temp folder and
ports, the demo run is labelled against them with ``--ray-address``, and once
the run has committed its first parts the second node is SIGKILLed, as a lost
machine would be. Ray re-runs the units that were on it on the head; every part of
every stage must then have the digests of an uninterrupted run. Both nodes are
stopped by killing their own process groups (never ``ray stop``, which would
stop every Ray instance on a shared machine). Both nodes see the same
filesystem here; a real cluster needs the run's output folder and the dataset on
storage every node mounts at the same path (see README, Orchestration).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from pipeline.label import run_label
from tests.net import free_loopback_port
from tests.reliability.helpers import (
    PROJECT_ROOT,
    assert_committed_parts_intact,
    cli_label_command,
    committed_markers,
    demo_cfg,
    demo_config,
    subprocess_env,
    write_config,
)

RAY = Path(sys.executable).with_name("ray")
# Each unit takes a second, so the run is still going when the second node is killed.
SLOW_UNITS = "before_compute=sleep-1"
START_TIMEOUT_S = 240


def _node_env(temp: Path) -> dict[str, str]:
    env = subprocess_env(SLOW_UNITS)
    env.update({"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0", "RAY_TMPDIR": str(temp)})
    return env


def _start_node(args: list[str], temp: Path, log: Path) -> subprocess.Popen:
    """``ray start --block ...`` in its own process group, so killing the group stops exactly this node."""
    return subprocess.Popen([str(RAY), "start", "--block", "--disable-usage-stats", *args], cwd=PROJECT_ROOT,
                            env=_node_env(temp), stdout=log.open("w"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=30)


def _cluster_nodes(address: str) -> int:
    """Alive nodes of the cluster, asked from a fresh driver (the test process never joins Ray)."""
    probe = ("import ray; ray.init(address=%r, log_to_driver=False); "
             "print(sum(n['Alive'] for n in ray.nodes()))" % address)
    env = {**subprocess_env(), "RAY_AUTH_MODE": "disabled"}
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120)
    return int(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 and out.stdout.strip() else 0


def _digests(run_dir: Path) -> dict[str, str]:
    """Every committed part's rows and errors checksums, by stage and part."""
    found = {}
    for marker_path in committed_markers(run_dir):
        marker = json.loads(marker_path.read_text())
        found[f"{marker_path.parent.parent.name}/{marker_path.name}"] = (
            f"{marker['rows_file']['sha256']}:{marker['errors_file']['sha256']}")
    return found


@pytest.mark.slow
@pytest.mark.skipif(not RAY.exists(), reason="the ray command is not installed next to this Python")
def test_second_node_killed_mid_run_finishes_with_identical_output(tmp_path):
    # Short socket paths: Ray's unix sockets live under the temp folder and must stay under ~100 bytes.
    temp = Path(tempfile.mkdtemp(prefix="rmn", dir="/tmp"))
    port = free_loopback_port()
    address = f"127.0.0.1:{port}"
    head = _start_node(["--head", f"--port={port}", "--num-cpus=1", "--include-dashboard=false",
                        f"--temp-dir={temp}", '--resources={"head_node": 1}'], temp, tmp_path / "head.log")
    second = None
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        second = _start_node([f"--address={address}", "--num-cpus=2", '--resources={"second_node": 1}'],
                             temp, tmp_path / "second.log")
        while _cluster_nodes(address) < 2:
            assert time.monotonic() < deadline, (tmp_path / "head.log").read_text()[-2000:] + \
                (tmp_path / "second.log").read_text()[-2000:]
            time.sleep(2)

        config = demo_config(tmp_path / "cluster", name="multinode", executor="ray", workers=3, part_size=1)
        label = subprocess.Popen(cli_label_command(write_config(tmp_path / "run.json", config),
                                                   "--ray-address", address),
                                 cwd=PROJECT_ROOT, env={**subprocess_env(), "RAY_AUTH_MODE": "disabled"},
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        run_dir = tmp_path / "cluster" / "multinode"
        # Kill the second node once the run is under way (the six ingest markers and two units committed).
        # Six caption units are ready at once and the head has one CPU, so the second node is running
        # units then; Ray's scheduler fills the head first, then spills to the second node.
        while len(committed_markers(run_dir)) < 8 and label.poll() is None:
            time.sleep(0.2)
        assert label.poll() is None, "the run finished before the second node could be killed"
        _kill_group(second)
        second = None
        output, _ = label.communicate(timeout=600)
        assert label.returncode == 0, output[-3000:]
    finally:
        for node in (second, head):
            if node is not None:
                _kill_group(node)
        shutil.rmtree(temp, ignore_errors=True)

    reference = demo_cfg(tmp_path / "reference", name="multinode", part_size=1)  # local executor, uninterrupted
    run_label(reference)
    assert assert_committed_parts_intact(run_dir) == 6 * 6
    assert _digests(run_dir) == _digests(reference.run_dir)
