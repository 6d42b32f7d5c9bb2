"""No credentials or absolute machine paths in what a run writes or logs.

A run directory is meant to be shared (copied to a cluster's shared storage,
published with the labels), so its JSON files, error tables and log lines may
name files relative to the project or dataset, never ``/home/alice/...``, and
never echo a password embedded in a URL.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.faults import ENV as FAULTS_ENV
from pipeline.label import run_label
from pipeline.config import load_config
from tests.reliability.bad_dataset import write_bad_dataset
from tests.reliability.helpers import PROJECT_ROOT, demo_config, error_rows, write_config

# The bad dataset's forged 10001x10001 PNG trips Pillow's warning before our own limit refuses it.
pytestmark = pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")

SECRET = "s3cret-T0ken"


def _machine_paths(tmp_path: Path) -> list[str]:
    import site

    return [str(tmp_path), str(PROJECT_ROOT), str(Path.home()), *site.getsitepackages()]


def _json_strings(value) -> list[str]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in _json_strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _json_strings(v)]
    return [value] if isinstance(value, str) else []


def _assert_clean(text: str, tmp_path: Path, where: str) -> None:
    assert SECRET not in text, f"{where} leaks a credential"
    for path in _machine_paths(tmp_path):
        assert path not in text, f"{where} contains the machine path {path}: {text[:300]}"


@pytest.fixture()
def secret_config(tmp_path) -> dict:
    return demo_config(tmp_path / "out", name="run", ray_address=f"ray://admin:{SECRET}@head.example.org:10001",
                       caption={"model_id": f"https://user:{SECRET}@models.example.org/blip"})


def test_run_files_hold_no_machine_paths_or_credentials(tmp_path, secret_config):
    cfg = load_config(secret_config)
    run_label(cfg)
    json_files = sorted(cfg.run_dir.rglob("*.json")) + sorted(cfg.run_dir.rglob("_SUCCESS"))
    assert (cfg.run_dir / "manifest.json") in json_files and len(json_files) > 10
    for path in json_files:
        text = path.read_text()
        _assert_clean(text, tmp_path, str(path.relative_to(cfg.run_dir)))
        absolute = [s for s in _json_strings(json.loads(text)) if s.startswith("/")]
        assert not absolute, f"{path.name} holds absolute paths: {absolute}"
    manifest = json.loads((cfg.run_dir / "manifest.json").read_text())
    assert "***@head.example.org" in manifest["config"]["ray_address"]


def test_error_rows_and_logs_hold_no_machine_paths(tmp_path, caplog, monkeypatch):
    """Corrupt images (Pillow names the full path) and a failing stage (a traceback) are the usual leaks."""
    caplog.set_level(logging.DEBUG)
    dataset = write_bad_dataset(tmp_path / "data", tmp_path / "out")
    cfg = load_config({**dataset.config, "max_retries": 0})
    monkeypatch.setenv(FAULTS_ENV, "before_compute:parse:0=raise")
    run_label(cfg)
    errors = error_rows(cfg.run_dir)
    assert {"corrupt_image", "stage_failed", "unsafe_path"} <= {e["reason"] for e in errors}
    for err in errors:
        _assert_clean(err["detail"], tmp_path, f"error row {err['stage']}/{err['reason']}")
    for record in caplog.records:
        if record.name.startswith(("relfactory", "pipeline", "stages", "storage")):
            _assert_clean(record.getMessage(), tmp_path, f"log line {record.name}")


def test_command_line_output_of_a_run_holds_no_machine_paths(tmp_path, capsys, secret_config):
    config = write_config(tmp_path / "run.json", secret_config)
    assert main(["label", "--config", str(config), "--orchestrator", "none"]) == 0
    out = capsys.readouterr()
    _assert_clean(out.out + out.err, tmp_path, "relfactory label output")
    assert re.search(r"shard\s+complete", out.out)


@pytest.mark.parametrize("text, leaked, kept", [
    ('File "/srv/alice/relfactory/stages/parse.py", line 3', "/srv/alice", "parse.py"),
    ("cannot identify image file '/data/coco/train2017/1.jpg'", "/data/coco", "train2017/1.jpg"),
    (f"https://bob:{SECRET}@hub.example.org/models/blip", SECRET, "hub.example.org/models/blip"),
    ("s3://bucket/key and 3/4 of a/b", None, "s3://bucket/key and 3/4 of a/b"),
])
def test_redact_text_drops_paths_and_credentials_but_keeps_the_rest(text, leaked, kept):
    from storage.manifest import redact_text

    clean = redact_text(text)
    assert leaked is None or leaked not in clean
    assert kept in clean
