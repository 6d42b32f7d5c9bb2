"""Large inputs are read in a child process: the ingest writes exactly what the in-process one writes, errors still reach the user."""

from __future__ import annotations

import json

import pipeline.large_inputs
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

    monkeypatch.setattr(pipeline.large_inputs, "ISOLATE_BYTES", -1)
    bad = tmp_path / "captions.json"
    bad.write_text('{"annotations": "no list"}')
    cfg = demo_cfg(tmp_path / "c", name="bad", caption={"captions_file": str(bad)})
    with pytest.raises(ConfigError, match="caption.captions_file"):
        plan_run(cfg)
