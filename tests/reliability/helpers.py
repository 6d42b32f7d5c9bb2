"""Shared pieces of the reliability suite: demo configs, run drivers and readers of a run's output.

Every end-to-end case runs the bundled demo dataset (6 images, oracle captions,
greedy tagger, local executor, 2 images per part) so one run takes about a second.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from pipeline.config import RunConfig, load_config
from pipeline.datasets import DEMO_DIR
from pipeline.faults import ENV as FAULTS_ENV
from pipeline.faults import STATE_ENV as FAULTS_STATE_ENV

PROJECT_ROOT = Path(__file__).resolve().parents[2]
STAGE_DIRS = ("ingest", "caption", "parse", "match", "tag", "shard")
DEMO_IMAGE_IDS = frozenset(range(1, 7))


def demo_config(output: Path, name: str = "rel", **over: Any) -> dict[str, Any]:
    """The demo run as a plain dict (what a config file holds); ``over`` merges one level deep."""
    data: dict[str, Any] = {
        "name": name, "output": str(output), "part_size": 2, "executor": "local", "fsync": False, "seed": 0,
        "dataset": {"kind": "demo"},
        "caption": {"backend": "oracle", "captions_file": str(DEMO_DIR / "captions.json"), "n_captions": 5},
        "tag": {"tagger": "greedy"},
    }
    for key, value in over.items():
        if isinstance(value, dict):
            data.setdefault(key, {}).update(value)
        else:
            data[key] = value
    return data


def demo_cfg(output: Path, name: str = "rel", **over: Any) -> RunConfig:
    return load_config(demo_config(output, name, **over))


def write_config(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(json.dumps(data, indent=2))
    return path


def subprocess_env(faults: str | None = None, fault_state: Path | None = None) -> dict[str, str]:
    """The environment of a pipeline subprocess: this one's, with faults set only when asked."""
    env = {k: v for k, v in os.environ.items() if k not in (FAULTS_ENV, FAULTS_STATE_ENV)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
    # One OpenMP thread: the machine has two cores and fork-based drivers need it.
    env.setdefault("OMP_NUM_THREADS", "1")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    if faults:
        env[FAULTS_ENV] = faults
    if fault_state is not None:
        env[FAULTS_STATE_ENV] = str(fault_state)
    return env


def cli_label_command(config_file: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "pipeline.cli", "label", "--config", str(config_file), "--orchestrator", "none",
            *extra]


def cli_label(config_file: Path, *extra: str, faults: str | None = None, fault_state: Path | None = None,
              timeout: float = 180) -> subprocess.CompletedProcess:
    """``relfactory label`` in a fresh interpreter, as a user runs it."""
    return subprocess.run(cli_label_command(config_file, *extra), cwd=PROJECT_ROOT,
                          env=subprocess_env(faults, fault_state), capture_output=True, text=True, timeout=timeout)


def start_cli_label(config_file: Path, *extra: str, faults: str | None = None) -> subprocess.Popen:
    return subprocess.Popen(cli_label_command(config_file, *extra), cwd=PROJECT_ROOT, env=subprocess_env(faults),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


# -- reading a run's output ------------------------------------------------------------------------------------------

def part_files(run_dir: Path) -> dict[str, bytes]:
    """Bytes of every part and error file of every stage, keyed by path relative to the run."""
    files = {}
    for stage in STAGE_DIRS:
        stage_dir = run_dir / stage
        for path in sorted(stage_dir.glob("part-*.parquet")) + sorted(stage_dir.glob("_errors/part-*.parquet")):
            files[str(path.relative_to(run_dir))] = path.read_bytes()
    return files


def stage_rows(run_dir: Path, stage: str) -> list[dict[str, Any]]:
    rows = [r for f in sorted((run_dir / stage).glob("part-*.parquet")) for r in pq.read_table(f).to_pylist()]
    return sorted(rows, key=lambda r: json.dumps(r, sort_keys=True, default=str))


def shard_rows(run_dir: Path) -> list[dict[str, Any]]:
    return sorted((r for f in sorted((run_dir / "shard").glob("part-*.parquet")) for r in pq.read_table(f).to_pylist()),
                  key=lambda r: r["image_id"])


def error_rows(run_dir: Path) -> list[dict[str, Any]]:
    return [e for stage in STAGE_DIRS for f in sorted((run_dir / stage).glob("_errors/part-*.parquet"))
            for e in pq.read_table(f).to_pylist()]


def accounting(run_dir: Path) -> tuple[set[int], dict[int, set[str]]]:
    """(image ids in the shards, image id → error reasons) of a finished run."""
    reasons: dict[int, set[str]] = {}
    for err in error_rows(run_dir):
        reasons.setdefault(err["image_id"], set()).add(err["reason"])
    return {r["image_id"] for r in shard_rows(run_dir)}, reasons


def committed_markers(run_dir: Path) -> list[Path]:
    return [m for stage in STAGE_DIRS for m in sorted((run_dir / stage).glob("_markers/part-*.json"))]


def assert_committed_parts_intact(run_dir: Path) -> int:
    """Every commit marker names files whose size and sha256 match; returns how many were checked."""
    markers = committed_markers(run_dir)
    for marker_path in markers:
        marker = json.loads(marker_path.read_text())
        for name in ("rows_file", "errors_file"):
            info = marker[name]
            target = marker_path.parent.parent / info["path"]  # paths are relative to the stage dir
            assert target.is_file(), f"{marker_path.name} commits {info['path']}, which is missing"
            data = target.read_bytes()
            assert len(data) == info["bytes"], f"{target} is torn: {len(data)} bytes, marker says {info['bytes']}"
            assert hashlib.sha256(data).hexdigest() == info["sha256"], f"{target} differs from what was committed"
            pq.read_table(target)  # a readable Parquet file, not half of one
    return len(markers)


def describe_run(run_dir: Path) -> dict[str, Any]:
    """What a reader of the directory would find: committed parts (checked), temp files, the lock."""
    intact: bool | str = True
    try:
        assert_committed_parts_intact(run_dir)
    except AssertionError as exc:
        intact = str(exc)
    return {"committed": len(committed_markers(run_dir)), "intact": intact,
            "temp_files": sorted(str(p.relative_to(run_dir)) for p in run_dir.rglob("*.tmp")),
            "lock": (run_dir / ".lock").exists()}


if __name__ == "__main__":  # python -m tests.reliability.helpers RUN_DIR REPORT.json (used inside a mount namespace)
    Path(sys.argv[2]).write_text(json.dumps(describe_run(Path(sys.argv[1]))))
