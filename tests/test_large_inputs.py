"""Large inputs are read in a child process: the ingest writes exactly what the in-process one writes, errors still reach the user."""

from __future__ import annotations

import json
from pathlib import Path

import pipeline.large_inputs
from pipeline.datasets import DEMO_DIR
from pipeline.runner import plan_run
from tests.reliability.helpers import demo_cfg, part_files


def test_isolated_ingest_matches_the_in_process_one(tmp_path, monkeypatch):
    in_process = plan_run(demo_cfg(tmp_path / "a", name="ingest"))
    monkeypatch.setattr(pipeline.large_inputs, "ISOLATE_BYTES", -1)  # every file counts as large
    cfg = demo_cfg(tmp_path / "b", name="ingest")
    assert pipeline.large_inputs.should_isolate(cfg)
    isolated = plan_run(cfg)
    assert (isolated.n_parts, isolated.ingest_stats) == (in_process.n_parts, in_process.ingest_stats)
    assert ingest_files(isolated) == ingest_files(in_process) and ingest_files(isolated)
    stats = json.loads((isolated.run_dir / "ingest" / "_STATS.json").read_text())
    assert stats["images"] == 6


def ingest_files(plan) -> dict[str, bytes]:
    return {k: v for k, v in part_files(plan.run_dir).items() if k.startswith("ingest/")}


def test_a_large_bad_captions_file_is_refused_from_the_child(tmp_path, monkeypatch):
    import pytest

    from pipeline.config import ConfigError

    monkeypatch.setattr(pipeline.large_inputs, "CAPTIONS_ISOLATE_BYTES", -1)
    bad = tmp_path / "captions.json"
    bad.write_text('{"annotations": "no list"}')
    cfg = demo_cfg(tmp_path / "c", name="bad", caption={"captions_file": str(bad)})
    with pytest.raises(ConfigError, match="caption.captions_file"):
        plan_run(cfg)


def test_a_complete_caption_stage_is_not_checked_again_and_a_new_file_is(tmp_path, monkeypatch):
    import pipeline.runner
    from pipeline.label import run_label

    captions = tmp_path / "captions.json"
    captions.write_bytes(Path(DEMO_DIR / "captions.json").read_bytes())
    cfg = demo_cfg(tmp_path / "d", name="checked", caption={"captions_file": str(captions)})
    run_label(cfg)
    checked = []
    monkeypatch.setattr(pipeline.runner, "_check_captions_file", lambda path, n: checked.append(path))
    plan_run(cfg)
    assert checked == []  # its key hashes the file, and the stage is complete under that key
    captions.write_text(captions.read_text().replace("a ", "the ", 1))
    plan_run(cfg)
    assert checked == [captions]


def test_a_large_runs_report_is_written_by_a_child(tmp_path, monkeypatch):
    import flows.artifacts
    from pipeline.label import run_label

    cfg = demo_cfg(tmp_path / "r", name="reported")
    _, manifest = run_label(cfg)
    monkeypatch.setattr(flows.artifacts, "REPORT_IN_CHILD_IMAGES", 0)
    report = flows.artifacts._report_for(cfg, manifest)
    assert report is not None and report.is_file() and "<html" in report.read_text()[:500].lower()
