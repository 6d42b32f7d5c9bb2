"""A stage that raises is retried a bounded number of times, then its images go to the error table.

The fault is injected inside the runner's retry loop, exactly where a stage bug
or a flaky resource (a GPU hiccup, a network filesystem) would surface. The run
must finish, say how many images failed and why, and leave no image unaccounted.
"""

from __future__ import annotations

import json
import logging

import pytest

from pipeline.cli import main
from pipeline.faults import ENV as FAULTS_ENV
from pipeline.faults import STATE_ENV as FAULTS_STATE_ENV
from pipeline.label import run_label
from tests.reliability.helpers import (
    DEMO_IMAGE_IDS,
    accounting,
    demo_cfg,
    demo_config,
    error_rows,
    part_files,
    write_config,
)

RUN = "run"


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    cfg = demo_cfg(tmp_path_factory.mktemp("reference"), name=RUN)
    run_label(cfg)
    return cfg.run_dir


def _attempt_warnings(caplog, stage: str) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "relfactory" and f"stage {stage} failed" in r.getMessage()]


@pytest.mark.parametrize("max_retries", [0, 2])
def test_always_failing_batch_is_retried_then_recorded(tmp_path, capsys, caplog, monkeypatch, max_retries):
    caplog.set_level(logging.WARNING, logger="relfactory")
    config = write_config(tmp_path / "run.json", demo_config(tmp_path / "out", name=RUN, max_retries=max_retries))
    monkeypatch.setenv(FAULTS_ENV, "before_compute:parse:1=raise")
    assert main(["label", "--config", str(config), "--orchestrator", "none"]) == 0
    out = capsys.readouterr().out
    run_dir = tmp_path / "out" / RUN

    assert len(_attempt_warnings(caplog, "parse")) == max_retries + 1, "bounded: exactly max_retries + 1 attempts"
    failed = [e for e in error_rows(run_dir) if e["stage"] == "parse"]
    assert sorted(e["image_id"] for e in failed) == [3, 4]  # part 1 holds images 3 and 4
    assert {e["reason"] for e in failed} == {"stage_failed"}
    assert all("injected fault" in e["detail"] for e in failed), "the reason says what went wrong"
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["stages"]["parse"]["error_reasons"] == {"stage_failed": 2}
    assert manifest["stages"]["shard"]["state"] == "complete"
    assert "stage_failed=2" in out, out  # the command line reports the count

    in_shards, reasons = accounting(run_dir)
    assert in_shards | set(reasons) == DEMO_IMAGE_IDS


def test_batch_failing_once_is_retried_to_the_same_output(tmp_path, caplog, monkeypatch, reference):
    caplog.set_level(logging.WARNING, logger="relfactory")
    monkeypatch.setenv(FAULTS_ENV, "before_compute:tag:0=raise/once")
    monkeypatch.setenv(FAULTS_STATE_ENV, str(tmp_path))
    cfg = demo_cfg(tmp_path / "out", name=RUN)
    _, manifest = run_label(cfg)
    assert len(_attempt_warnings(caplog, "tag")) == 1
    assert manifest["this_invocation"]["retried_parts"] == 1
    assert all(e["reason"] != "stage_failed" for e in error_rows(cfg.run_dir))
    assert part_files(cfg.run_dir) == part_files(reference)


def test_every_stage_failing_still_accounts_for_every_image(tmp_path, monkeypatch):
    monkeypatch.setenv(FAULTS_ENV, "before_compute=raise")
    cfg = demo_cfg(tmp_path, name=RUN, max_retries=1)
    _, manifest = run_label(cfg)
    in_shards, reasons = accounting(cfg.run_dir)
    assert in_shards == set()
    assert set(reasons) == DEMO_IMAGE_IDS and all("stage_failed" in r for r in reasons.values())
    assert manifest["stages"]["caption"]["error_reasons"] == {"stage_failed": 6}
    assert manifest["stages"]["shard"]["state"] == "complete"
