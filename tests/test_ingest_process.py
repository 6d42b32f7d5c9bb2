"""A large dataset's ingest runs in a child process and writes exactly what the in-process ingest writes."""

from __future__ import annotations

import json

import pipeline.ingest_process
from pipeline.runner import plan_run
from tests.reliability.helpers import demo_cfg, part_files


def test_isolated_ingest_matches_the_in_process_one(tmp_path, monkeypatch):
    in_process = plan_run(demo_cfg(tmp_path / "a", name="ingest"))
    monkeypatch.setattr(pipeline.ingest_process, "ISOLATE_BYTES", -1)  # every file counts as large
    cfg = demo_cfg(tmp_path / "b", name="ingest")
    assert pipeline.ingest_process.should_isolate(cfg)
    isolated = plan_run(cfg)
    assert (isolated.n_parts, isolated.ingest_stats) == (in_process.n_parts, in_process.ingest_stats)
    assert ingest_files(isolated) == ingest_files(in_process) and ingest_files(isolated)
    stats = json.loads((isolated.run_dir / "ingest" / "_STATS.json").read_text())
    assert stats["images"] == 6


def ingest_files(plan) -> dict[str, bytes]:
    return {k: v for k, v in part_files(plan.run_dir).items() if k.startswith("ingest/")}
