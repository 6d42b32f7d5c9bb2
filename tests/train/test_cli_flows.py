"""``relfactory train`` / ``evaluate`` argument handling, the Prefect flows and Ray Train."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from pipeline.cli_train import add_train_parsers, build_train_config
from pipeline.config import ConfigError
from tests.train.shards import write_demo_run


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="relfactory")
    add_train_parsers(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def test_train_flags_become_a_config(tmp_path: Path) -> None:
    args = _parse(["train", "--shards", "runs/coco", "runs/o365", "--weights", "1", "0.5", "--eta", "0.3",
                   "--images", "coco/train2017", "o365/images", "--output", str(tmp_path), "--preset", "tiny",
                   "--epochs", "2", "--lr-drop", "1", "--batch-size", "4"])
    cfg = build_train_config(args)
    assert [(s.kind, str(s.path), s.weight, s.eta, str(s.images)) for s in cfg.sources] == [
        ("shards", "runs/coco", 1.0, 0.3, "coco/train2017"), ("shards", "runs/o365", 0.5, 0.3, "o365/images")]
    assert (cfg.epochs, cfg.lr_drop_epochs, cfg.global_batch, cfg.preset) == (2, [1], 4, "tiny")
    # Paper defaults for everything not given.
    assert (cfg.lr, cfg.lr_backbone, cfg.lr_text_encoder, cfg.weight_decay, cfg.clip_max_norm) == (
        1.41e-4, 1.41e-5, 1.41e-5, 1e-4, 0.1)


def test_train_config_file_with_flag_overrides(tmp_path: Path) -> None:
    config = tmp_path / "train.json"
    config.write_text(json.dumps({"mode": "rtagger", "sources": [{"kind": "vg", "path": "sg.json", "images": "vg"}],
                                  "epochs": 5}))
    cfg = build_train_config(_parse(["train", "--config", str(config), "--epochs", "7"]))
    assert cfg.mode == "rtagger" and cfg.model_variant == "rtagger" and cfg.epochs == 7
    assert cfg.sources[0].kind == "vg"


def test_bad_train_arguments_name_the_problem() -> None:
    with pytest.raises(ConfigError, match="nothing to train on"):
        build_train_config(_parse(["train"]))
    with pytest.raises(ConfigError, match="--weights"):
        build_train_config(_parse(["train", "--shards", "a", "--weights", "1", "2"]))
    with pytest.raises(ConfigError, match="init_checkpoint"):
        build_train_config(_parse(["train", "--shards", "a", "--mode", "finetune"]))


def test_train_command_without_prefect(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = write_demo_run(tmp_path / "runs")
    args = _parse(["train", "--shards", str(run), "--preset", "tiny", "--output", str(tmp_path / "out"),
                   "--batch-size", "2", "--max-steps", "1", "--augment-scale", "0.15", "--num-workers", "0",
                   "--orchestrator", "none"])
    assert args.func(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["step"] == 1 and Path(summary["checkpoint"]).is_file()


@pytest.mark.slow
def test_train_flow_trains_and_evaluate_flow_scores(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    from flows.train import train_flow
    from stages.train.config import load_train_config

    run = write_demo_run(tmp_path / "runs")
    cfg = load_train_config({"preset": "tiny", "sources": [{"path": str(run)}], "output": str(tmp_path / "out"),
                             "global_batch": 2, "max_steps": 1, "augment_scale": 0.15, "num_workers": 0,
                             "pseudo_labels": False})
    summary = train_flow(cfg.model_dump(mode="json"))
    assert summary["step"] == 1 and Path(summary["checkpoint"]).is_file()

    shared_data = request.getfixturevalue("shared_data")  # the evaluation half needs the real benchmark files
    from flows.evaluate import evaluate_flow

    coco = shared_data / "coco-mini"
    out = evaluate_flow(summary["checkpoint"], "v-coco", str(shared_data / "v-coco" / "vcoco_val.json"),
                        str(coco / "train2017"),
                        {"coco_instances": str(coco / "annotations" / "instances_train2017.json"), "size": 64,
                         "max_size": 96})
    assert Path(out["path"]).is_file() and out["result"]["benchmark"] == "v-coco"
    assert Path(out["path"]).parent == Path(summary["checkpoint"]).parent


@pytest.mark.slow
def test_ray_train_worker_trains(tmp_path: Path) -> None:
    import ray

    from stages.train.config import load_train_config
    from stages.train.ray_train import train_with_ray

    run = write_demo_run(tmp_path / "runs")
    cfg = load_train_config({"preset": "tiny", "sources": [{"path": str(run)}], "output": str(tmp_path / "out"),
                             "global_batch": 2, "max_steps": 2, "augment_scale": 0.15, "num_workers": 0,
                             "pseudo_labels": False, "device": "cpu"})
    try:
        metrics = train_with_ray(cfg, num_workers=1)
    finally:
        ray.shutdown()
    assert metrics["step"] == 2
    assert (tmp_path / "out" / "checkpoint.pth").is_file()
