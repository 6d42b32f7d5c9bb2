"""Results JSON next to the checkpoint, and the text table."""

from __future__ import annotations

import json
import math

from stages.evaluation.report import EvalResult, format_table, read_result, result_path, write_result


def sample_result() -> EvalResult:
    return EvalResult(
        benchmark="hico-det",
        protocol="test protocol",
        metrics={"mAP_full": 31.25, "mAP_rare": float("nan")},
        per_class={"AP": {"000 board airplane": 50.0}},
        counts={"images": 3},
    )


def test_result_is_written_next_to_the_checkpoint(tmp_path):
    checkpoint = tmp_path / "run" / "checkpoint0019.pth"
    checkpoint.parent.mkdir()
    checkpoint.write_bytes(b"weights")
    path = write_result(sample_result(), checkpoint, extra={"max_per_image": 100})
    assert path == tmp_path / "run" / "checkpoint0019.pth.eval-hico-det.json"
    data = json.loads(path.read_text())
    assert data["checkpoint"] == "checkpoint0019.pth" and data["run"] == {"max_per_image": 100}
    assert data["metrics"] == {"mAP_full": 31.25, "mAP_rare": None}  # NaN is not JSON: null
    back = read_result(path)
    assert back.metrics["mAP_full"] == 31.25 and math.isnan(back.metrics["mAP_rare"])
    assert back.per_class == sample_result().per_class and back.counts == {"images": 3}
    assert not list(path.parent.glob(".*"))  # no temp file left behind


def test_checkpoint_directories_get_the_file_inside(tmp_path):
    assert result_path(tmp_path, "v-coco") == tmp_path / "eval-v-coco.json"


def test_table_lists_every_metric():
    table = format_table(sample_result())
    lines = table.splitlines()
    assert lines[0] == "hico-det — test protocol" and "(images=3)" in lines[1]
    assert any(line.split() == ["mAP_full", "31.25"] for line in lines)
    assert any(line.split() == ["mAP_rare", "n/a"] for line in lines)
