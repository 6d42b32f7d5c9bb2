"""Disk full / permission denied on the output: a clear error, nothing half-written visible as committed.

Injected faults make a write fail exactly where it hurts (a part file, a commit
marker, a ``_SUCCESS``, the manifest: after the temp file is written, before it
replaces the target). Where the machine allows it, the same is done for real: a
run on a tiny tmpfs that fills up, and a run as an unprivileged user on a
read-only output. In every case the run stops with one readable line, every
committed part still matches its marker, and re-running finishes the job with
output identical to an uninterrupted run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.faults import ENV as FAULTS_ENV
from pipeline.label import run_label
from tests.reliability.helpers import (
    PROJECT_ROOT,
    assert_committed_parts_intact,
    cli_label_command,
    demo_cfg,
    demo_config,
    describe_run,
    part_files,
    subprocess_env,
    write_config,
)

RUN = "run"
MESSAGES = {"enospc": "no space left on the output device", "eacces": "permission denied writing"}


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    cfg = demo_cfg(tmp_path_factory.mktemp("reference"), name=RUN)
    run_label(cfg)
    return cfg.run_dir


@pytest.mark.parametrize("target, action", [
    ("ingest/part-00001.parquet", "enospc"),
    ("caption/_markers/part-00000.json", "eacces"),
    ("tag/part-00002.parquet", "enospc"),
    ("shard/_SUCCESS", "eacces"),
    (f"{RUN}/manifest.json", "enospc"),
])
def test_failed_write_is_a_clear_error_and_resumes_identically(tmp_path, capsys, monkeypatch, reference,
                                                              target, action):
    config = write_config(tmp_path / "run.json", demo_config(tmp_path / "out", name=RUN))
    run_dir = tmp_path / "out" / RUN
    monkeypatch.setenv(FAULTS_ENV, f"before_rename:{target}={action}")
    code = main(["label", "--config", str(config), "--orchestrator", "none"])
    err = capsys.readouterr().err
    assert code == 1
    assert MESSAGES[action] in err and "Traceback" not in err, err
    failed_file = run_dir.parent / target if target.startswith(f"{RUN}/") else run_dir / target
    assert not failed_file.exists(), "the file whose write failed must not appear"
    state = describe_run(run_dir)
    assert state["intact"] is True, state
    assert state["temp_files"] == [], "the failed write left its temp file"
    assert not state["lock"], "the failed run must release its lock"
    stage, name = target.split("/", 1)
    if name.startswith("part-") and name.endswith(".parquet"):
        assert not (run_dir / stage / "_markers" / name.replace(".parquet", ".json")).exists()

    monkeypatch.delenv(FAULTS_ENV)
    assert main(["label", "--config", str(config), "--orchestrator", "none"]) == 0
    assert part_files(run_dir) == part_files(reference)
    assert_committed_parts_intact(run_dir)


def _can_mount_tmpfs() -> bool:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-m", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"],
                           capture_output=True)
    return probe.returncode == 0


@pytest.mark.slow
@pytest.mark.skipif(not _can_mount_tmpfs(), reason="needs root and mount namespaces to make a tiny tmpfs")
def test_real_disk_full_on_a_tiny_tmpfs(tmp_path, reference):
    """The output fills up for real (ENOSPC from the kernel, inside pyarrow's writer or ours)."""
    mount_point = tmp_path / "small-disk"
    mount_point.mkdir()
    config = write_config(tmp_path / "run.json", demo_config(mount_point / "out", name=RUN))
    label = " ".join(cli_label_command(config))
    run_dir = mount_point / "out" / RUN
    script = f"""
        mount -t tmpfs -o size=120k,nr_inodes=400 tmpfs {mount_point} || exit 90
        {label} > {tmp_path}/full.out 2> {tmp_path}/full.err
        echo $? > {tmp_path}/full.rc
        python -m tests.reliability.helpers {run_dir} {tmp_path}/full.state.json || exit 91
        mount -o remount,size=16m {mount_point} || exit 92
        {label} > {tmp_path}/freed.out 2> {tmp_path}/freed.err
        echo $? > {tmp_path}/freed.rc
        cp -a {run_dir} {tmp_path}/copied || exit 93
    """
    env = subprocess_env()
    env["PATH"] = f"{Path(cli_label_command(config)[0]).parent}{os.pathsep}{env.get('PATH', '')}"
    done = subprocess.run(["unshare", "-m", "sh", "-c", script], cwd=PROJECT_ROOT, env=env, capture_output=True,
                          text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    err = (tmp_path / "full.err").read_text()
    assert (tmp_path / "full.rc").read_text().strip() == "1", err
    assert MESSAGES["enospc"] in err and "Traceback" not in err, err
    state = json.loads((tmp_path / "full.state.json").read_text())
    assert state["committed"] > 0, "the disk is sized to fill up mid-run, after some parts committed"
    assert state["intact"] is True and state["temp_files"] == [], state
    assert not state["lock"]
    assert (tmp_path / "freed.rc").read_text().strip() == "0", (tmp_path / "freed.err").read_text()
    assert part_files(tmp_path / "copied") == part_files(reference)


def _without_dac_override(command: list[str]) -> list[str] | None:
    """The command as it must run to be refused by file modes: root ignores them unless it drops the capability."""
    if os.geteuid() != 0:
        return command
    if shutil.which("setpriv") is None:
        return None
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--", *command]


def test_read_only_output_is_a_clear_error(tmp_path):
    """A real EACCES from the kernel on a read-only output folder."""
    output = tmp_path / "out"
    output.mkdir()
    config = write_config(tmp_path / "run.json", demo_config(output, name=RUN))
    command = _without_dac_override(cli_label_command(config))
    if command is None:
        pytest.skip("running as root without setpriv: file modes cannot refuse a write")
    output.chmod(0o555)
    try:
        done = subprocess.run(command, cwd=PROJECT_ROOT, env=subprocess_env(), capture_output=True, text=True,
                              timeout=120)
    finally:
        output.chmod(0o755)
    assert done.returncode == 1, done.stderr
    assert MESSAGES["eacces"] in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert list(output.iterdir()) == [], "nothing may be left in a read-only output"
