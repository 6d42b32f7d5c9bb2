"""Bad inputs refused before any work, in one line, leaving nothing behind; the lock's read-only and recovery cases."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.lock import RunLock
from tests.reliability.helpers import PROJECT_ROOT, cli_label_command, demo_config, subprocess_env, write_config

RUN = "precheck"


def _label(tmp_path: Path, **over) -> tuple[int, Path]:
    output = tmp_path / "out"
    config = write_config(tmp_path / "run.json", demo_config(output, name=RUN, **over))
    return main(["label", "--config", str(config), "--orchestrator", "prefect"]), output


def test_malformed_yaml_config_is_one_line_naming_the_position(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "run.yaml"
    config.write_text("name: rel\ntag:\n  eta: [0.2\n  tagger: greedy\n")
    assert main(["label", "--config", str(config), "--orchestrator", "none"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    assert "malformed YAML at line" in err and "run.yaml" in err and "Traceback" not in err


@pytest.mark.parametrize("content, problem", [
    (b"", "is empty (0 bytes)"),
    (b"{not json", "cannot read captions file"),
    (b'{"images": []}', "no 'annotations' list"),
    (b'{"annotations": []}', "holds no captions"),
])
def test_a_bad_captions_file_is_refused_before_ray_or_ingest(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                             content: bytes, problem: str) -> None:
    captions = tmp_path / "captions.json"
    captions.write_bytes(content)
    started = time.perf_counter()
    # The Prefect orchestrator: the check must come before its server and Ray start.
    code, output = _label(tmp_path, caption={"captions_file": str(captions)}, executor="ray")
    elapsed = time.perf_counter() - started
    err = capsys.readouterr().err
    assert code == 2 and "caption.captions_file" in err and problem in err, err
    assert elapsed < 20, f"refused only after {elapsed:.1f} s: work started before the check"
    assert not output.exists(), "a refused run leaves no folder behind"


def test_a_run_refused_while_planning_leaves_no_empty_run_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, output = _label(tmp_path, executor="local", match={"synonyms_file": str(tmp_path / "missing.json")})
    assert code == 2, capsys.readouterr().err
    assert not output.exists()
    from storage.inspect import list_runs

    assert "never finished planning" not in list_runs(output)


def test_stale_lock_recovery_leaves_no_guard_file(tmp_path: Path) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    (tmp_path / ".lock").write_text(json.dumps({"host": os.uname().nodename, "pid": dead.pid, "start": "1",
                                                "since": time.time() - 60}))
    (tmp_path / ".lock.recover").write_text("")  # what earlier versions left behind
    with RunLock(tmp_path):
        pass
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def _readonly_mount_command() -> list[str] | None:
    if shutil.which("unshare") is None:
        return None
    return ["unshare", "-m"] if os.geteuid() == 0 else ["unshare", "--user", "--map-root-user", "--mount"]


def test_an_output_on_a_read_only_filesystem_is_the_permission_message(tmp_path: Path) -> None:
    """A real EROFS from the kernel (a read-only bind mount in a private mount namespace)."""
    prefix = _readonly_mount_command()
    if prefix is None:
        pytest.skip("needs unshare for a private read-only mount")
    output = tmp_path / "ro"
    output.mkdir()
    config = write_config(tmp_path / "run.json", demo_config(output / "runs", name=RUN))
    label = " ".join(cli_label_command(config))
    script = (f"mount --bind {output} {output} && mount -o remount,bind,ro {output} || exit 90\n"
              f"exec {label}")
    done = subprocess.run([*prefix, "sh", "-c", script], cwd=PROJECT_ROOT, env=subprocess_env(), capture_output=True,
                          text=True, timeout=120)
    if done.returncode == 90:
        pytest.skip(f"cannot make a read-only mount here: {done.stderr.strip()}")
    assert done.returncode == 1, done.stderr
    err = done.stderr.strip()
    assert "permission denied writing" in err and "read-only file system" in err, err
    assert "Traceback" not in err and err.count("\n") == 0, err
    assert list(output.iterdir()) == []
