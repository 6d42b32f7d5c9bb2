"""What the factory says about a run matches what it did: adoption named, stages in flow order with counts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.cli_label import run_summary_lines
from pipeline.contracts import STAGE_ORDER
from pipeline.label import run_label
from storage.inspect import list_runs
from tests.reliability.helpers import demo_cfg, demo_config, write_config


@pytest.mark.parametrize("orchestrator", ["none", "prefect"])
def test_a_run_made_of_adopted_parts_says_where_they_came_from(tmp_path: Path, orchestrator: str,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    first = demo_cfg(tmp_path / "out", name="first")
    run_label(first)
    config = write_config(tmp_path / "second.json", demo_config(tmp_path / "out", name="second"))
    assert main(["label", "--config", str(config), "--orchestrator", orchestrator]) == 0
    out = capsys.readouterr().out
    assert "adopted 18 parts from run first" in out and "nothing computed" in out, out
    assert "every stage was cached" not in out
    manifest = json.loads((tmp_path / "out" / "second" / "manifest.json").read_text())
    assert manifest["this_invocation"]["parts_adopted"] == 18
    assert manifest["this_invocation"]["adopted_from"]["first"]["ingest"] == 3


def test_a_partly_adopted_run_counts_computed_adopted_and_cached_parts(tmp_path: Path) -> None:
    run_label(demo_cfg(tmp_path / "out", name="first"))
    _, manifest = run_label(demo_cfg(tmp_path / "out", name="eta05", tag={"eta": 0.5}))
    headline = run_summary_lines(manifest)[0]
    assert "computed 6 of 15 stage parts (tag 3, shard 3)" in headline
    assert "adopted 12 parts from run first (ingest 3, caption 3, parse 3, match 3)" in headline
    assert "0 already in this run" in headline


def test_an_identical_rerun_is_still_called_up_to_date(tmp_path: Path) -> None:
    cfg = demo_cfg(tmp_path / "out", name="only")
    run_label(cfg)
    _, manifest = run_label(cfg)
    assert "every stage was cached, no work done" in run_summary_lines(manifest)[0]


def test_runs_lists_stages_in_flow_order_with_row_and_error_counts(tmp_path: Path) -> None:
    cfg = demo_cfg(tmp_path / "out", name="listed")
    _, manifest = run_label(cfg)
    listing = list_runs(tmp_path / "out").splitlines()
    stage_lines = [line.split() for line in listing[1:]]
    assert [words[0] for words in stage_lines] == list(STAGE_ORDER)
    for words in stage_lines:
        info = manifest["stages"][words[0]]
        assert words[2:] == [f"rows={info['rows']}", f"errors={info['errors']}"]
    # The summary printed after a run reads the manifest back from disk (keys sorted) in flow order too.
    on_disk = json.loads((cfg.run_dir / "manifest.json").read_text())
    assert [line.split()[0] for line in run_summary_lines(on_disk)[1:]] == list(STAGE_ORDER)
