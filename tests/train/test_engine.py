"""The training loop on the tiny model: exact resume, learning, R-Tagger mode, fine-tuning."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from model.checkpoint import load_checkpoint
from stages.train.checkpointing import ResumeError, load_train_state
from stages.train.config import load_train_config
from stages.train.engine import train
from tests.train.shards import label_demo, read_run_rows, shard_rows, write_demo_run

TINY = {"preset": "tiny", "augment_scale": 0.15, "global_batch": 2, "num_workers": 0, "log_every": 1,
        "lr_drop_epochs": [1], "keep_epoch_checkpoints": False}


class Crash(RuntimeError):
    pass


def _config(run: Path, output: Path, **overrides):  # type: ignore[no-untyped-def]
    return load_train_config({**TINY, "sources": [{"path": str(run)}], "output": str(output), **overrides})


def test_resume_after_a_crash_gives_identical_weights(tmp_path: Path) -> None:
    run = write_demo_run(tmp_path / "runs")
    # 5 images, batch 2: 2 steps per epoch; 5 steps cross an epoch end and the lr drop.
    straight = train(_config(run, tmp_path / "straight", epochs=3, max_steps=5))
    assert straight.step == 5 and len(straight.history) == 5

    def crash_after_step_4(step: int, row: dict) -> None:
        if step == 4:
            raise Crash("killed")

    interrupted = _config(run, tmp_path / "resumed", epochs=3, max_steps=5, checkpoint_every_steps=3,
                          checkpoint_every_epochs=3)
    with pytest.raises(Crash):
        train(interrupted, on_step=crash_after_step_4)
    assert load_train_state(tmp_path / "resumed")["step"] == 3  # step 4's work was lost
    # Data loading in a worker process must not change anything either.
    resumed = train(interrupted.model_copy(update={"num_workers": 1}))
    assert resumed.step == 5 and [row["step"] for row in resumed.history] == [4, 5]

    a = load_train_state(tmp_path / "straight")
    b = load_train_state(tmp_path / "resumed")
    assert a["model"].keys() == b["model"].keys()
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert resumed.history[-1]["loss"] == straight.history[-1]["loss"]
    assert a["optimizer"]["state"][0]["exp_avg"].equal(b["optimizer"]["state"][0]["exp_avg"])
    # The log of the crashed run was trimmed back to the checkpoint, then continued.
    logged = [json.loads(line)["step"] for line in (tmp_path / "resumed" / "log.jsonl").read_text().splitlines()]
    assert logged == [1, 2, 3, 4, 5]
    # The lr dropped x0.1 after epoch 1 (step 2).
    assert straight.history[1]["lr"] == pytest.approx(1.41e-4)
    assert straight.history[2]["lr"] == pytest.approx(1.41e-5)


def test_resume_against_other_data_is_refused(tmp_path: Path) -> None:
    run = write_demo_run(tmp_path / "runs")
    train(_config(run, tmp_path / "out", max_steps=1, pseudo_labels=False))
    other = write_demo_run(tmp_path / "other", rows=shard_rows()[:3])
    with pytest.raises(ResumeError, match="sources"):
        train(_config(other, tmp_path / "out", max_steps=2, pseudo_labels=False))


def test_loss_falls_on_shards_the_factory_labelled(tmp_path: Path) -> None:
    labelled = label_demo(tmp_path / "labelled")
    # Two of the demo photos, with the relations the labelling pipeline gave them.
    rows = [r for r in read_run_rows(labelled) if r["image_id"] in (1, 2)]
    run = write_demo_run(tmp_path / "runs", rows=rows)
    cfg = _config(run, tmp_path / "out", global_batch=2, epochs=30, augment=False, lr=2e-3, lr_backbone=2e-4,
                  lr_text_encoder=2e-4, lr_drop_epochs=[], checkpoint_every_epochs=30, pseudo_labels=False)
    result = train(cfg)
    losses = [row["loss"] for row in result.history]
    first, last = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    assert last < 0.6 * first, (first, last)
    assert result.images_per_second > 0


def test_rtagger_mode_trains_on_given_pairs(tmp_path: Path) -> None:
    run = write_demo_run(tmp_path / "runs")
    result = train(_config(run, tmp_path / "tagger", mode="rtagger", max_steps=2, pseudo_labels=False))
    assert result.step == 2 and all(torch.isfinite(torch.tensor(r["loss"])) for r in result.history)
    model, metadata = load_checkpoint(result.checkpoint)
    assert model.config.variant == "rtagger" and metadata["mode"] == "rtagger"


def _distance(a: dict, b: dict) -> float:
    return sum(float((a[k].float() - b[k].float()).norm()) for k in a if a[k].is_floating_point())


def test_finetune_starts_from_a_checkpoint(tmp_path: Path) -> None:
    run = write_demo_run(tmp_path / "runs")
    # Pre-training with a large lr moves the weights far from their initialisation.
    pre = train(_config(run, tmp_path / "pre", max_steps=2, pseudo_labels=False, lr=5e-2, lr_backbone=5e-2,
                        lr_text_encoder=5e-2))
    tuned = train(_config(run, tmp_path / "tuned", mode="finetune", init_checkpoint=str(pre.checkpoint),
                          max_steps=1, pseudo_labels=False, lr=1e-6))
    fresh = train(_config(run, tmp_path / "fresh", max_steps=1, pseudo_labels=False, lr=1e-6))
    weights = {name: load_checkpoint(r.checkpoint)[0].state_dict() for name, r in
               (("pre", pre), ("tuned", tuned), ("fresh", fresh))}
    assert _distance(weights["tuned"], weights["pre"]) < 0.01 * _distance(weights["tuned"], weights["fresh"])
    assert load_checkpoint(tuned.checkpoint)[1]["mode"] == "finetune"
