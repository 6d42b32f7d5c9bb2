"""``relfactory train --loss rcl``: RLIPv2 pre-training with the RCL term, on shards of the demo."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from pipeline.cli import main
from tests.train.shards import write_demo_run


@pytest.mark.slow
def test_train_with_rcl_logs_the_contrastive_term(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = write_demo_run(tmp_path / "runs")
    out = tmp_path / "rcl"
    code = main(["train", "--shards", str(run), "--preset", "tiny", "--loss", "rcl", "--max-steps", "2",
                 "--batch-size", "2", "--num-workers", "0", "--augment-scale", "0.15", "--output", str(out),
                 "--orchestrator", "none"])
    assert code == 0
    assert json.loads((out / "train_config.json").read_text())["loss"] == "rcl"
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert rows and rows[-1]["step"] == 2  # logged every 10 steps and at the last one
    assert all(math.isfinite(r["loss_rcl"]) and r["loss_rcl"] > 0 for r in rows)
    assert json.loads(capsys.readouterr().out)["step"] == 2
