"""The learning check: the model must fit a few labelled images, on the demo and on real COCO photos."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch

from pipeline.cli_train import add_train_parsers
from pipeline.config import ConfigError
from stages.train.overfit import OverfitReport, RecallAt, overfit_check, reachable_triplets
from stages.train.records import Record, Relation

from .shards import label_demo, write_demo_run


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_train_parsers(parser.add_subparsers(dest="command"))
    return parser.parse_args(["train", *argv])


def test_reachable_triplets_count_query_slots_and_the_cut() -> None:
    relations = [Relation(0, 1, "on"), Relation(0, 1, "near"), Relation(1, 2, "on"), Relation(2, 0, "by")]
    record = Record(1, "t", "x.jpg", Path("."), [(0, 0, 1, 1)] * 3, ["a", "b", "c"], relations)
    # Three pairs; with two query slots only the first two pairs (3 triplets) can be predicted.
    assert reachable_triplets([record], k=10, num_queries=2) == 3
    assert reachable_triplets([record], k=2, num_queries=8) == 2
    assert reachable_triplets([record, record], k=10, num_queries=8) == 8


def test_report_prints_every_term_and_both_recalls() -> None:
    report = OverfitReport("demo", "tiny", 3, 4, 1.0,
                           {"loss": [(1, 4.0), (2, 3.0), (3, 2.0), (4, 1.0)],
                            "loss_entity_ce": [(1, 2.0), (2, 1.0), (3, 0.5), (4, 0.25)]},
                           [RecallAt(10, 9, 10, 11), RecallAt(100, 10, 10, 11)])
    text = report.format(points=4)
    assert "loss_entity_ce" in text and "0.2500" in text
    assert "recall@10: 9/11 training triplets, 9/10 reachable (90 %)" in text
    assert report.final("loss_entity_ce") == 0.25
    assert report.to_dict()["recall"]["@100"] == {"found": 10, "reachable": 10, "total": 11}


def test_overfit_flag_checks_one_shard_run(tmp_path: Path) -> None:
    from stages.train.overfit import overfit_command

    args = _parse(["--shards", "a", "b", "--overfit", "4"])
    with pytest.raises(ConfigError, match="exactly one --shards"):
        overfit_command(args)


def test_overfit_command_prints_the_check_and_writes_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from pipeline.cli_train import cmd_train

    run = write_demo_run(tmp_path / "runs")
    args = _parse(["--shards", str(run), "--overfit", "2", "--max-steps", "2", "--output", str(tmp_path / "out")])
    assert cmd_train(args) == 0
    out = capsys.readouterr().out
    assert "learning check: 2 images of demo" in out and "recall@10:" in out and "loss_relation" in out
    saved = json.loads((tmp_path / "out" / "overfit.json").read_text())
    assert saved["steps"] == 2 and saved["recall"]["@10"]["total"] == 6  # demo images 1 and 2: 3 + 3


@pytest.mark.slow
def test_tiny_model_learns_the_demo(tmp_path: Path) -> None:
    torch.set_num_threads(2)
    run = label_demo(tmp_path / "labelled")
    report = overfit_check(run, tmp_path / "train", images=6, steps=300)
    print(report.format())
    at10 = report.recall_at(10)
    assert at10.total >= 15  # every demo image with relations
    assert at10.found >= at10.total - 1, report.format()
    assert report.final("loss_entity_ce") < 0.1


@pytest.mark.slow
def test_tiny_model_learns_real_coco_images_labelled_by_the_pipeline(shared_data: Path, tmp_path: Path) -> None:
    from bench.overfit import label_coco

    torch.set_num_threads(2)
    run = label_coco(shared_data / "coco-mini", tmp_path / "runs")
    # The manifest keeps no absolute paths outside the output: say where the images are.
    report = overfit_check(run, tmp_path / "train", images=8, steps=300,
                           image_root=shared_data / "coco-mini" / "train2017")
    print(report.format())
    at10 = report.recall_at(10)
    assert report.final("loss_entity_ce") < 0.1, report.format()
    assert at10.found >= 0.8 * at10.reachable, report.format()
