"""Runs the inspection tests read: the shared COCO images (oracle captions) and the bundled demo."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipeline.config import load_config
from pipeline.datasets import DEMO_DIR
from pipeline.label import run_label


@dataclass
class CocoRuns:
    output: Path
    images: Path
    oracle: Path  # η 0.2, five human captions per image
    strict: Path  # the same run at η 0.5 (re-tags only: earlier stages are adopted from the oracle run)
    two_captions: Path  # two captions per image


def coco_config(coco: Path, output: Path, name: str, **tag: object) -> object:
    return load_config({
        "name": name, "output": str(output), "part_size": 32, "executor": "local", "fsync": False,
        "dataset": {"kind": "coco", "annotations": str(coco / "annotations" / "instances_train2017.json"),
                    "images": str(coco / "train2017")},
        "caption": {"backend": "oracle", "captions_file": str(coco / "annotations" / "captions_train2017.json"),
                    "n_captions": int(tag.pop("n_captions", 5))},
        "tag": {"tagger": "greedy", **tag},
    })


@pytest.fixture(scope="session")
def coco_runs(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> CocoRuns:
    coco = shared_data / "coco-mini"
    output = tmp_path_factory.mktemp("inspection-runs")
    run_label(coco_config(coco, output, "oracle"))
    run_label(coco_config(coco, output, "strict", eta=0.5))
    run_label(coco_config(coco, output, "two-captions", n_captions=2))
    return CocoRuns(output, coco / "train2017", output / "oracle", output / "strict", output / "two-captions")


@pytest.fixture(scope="session")
def demo_gaps(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled demo (no shared data needed) with image 6's captions missing: relations and an error."""
    root = tmp_path_factory.mktemp("demo-gaps")
    captions = json.loads((DEMO_DIR / "captions.json").read_text())
    captions["annotations"] = [a for a in captions["annotations"] if a["image_id"] != 6]
    (root / "captions.json").write_text(json.dumps(captions))
    cfg = load_config({"name": "gaps", "output": str(root / "runs"), "executor": "local", "fsync": False,
                       "dataset": {"kind": "demo"}, "tag": {"tagger": "greedy"},
                       "caption": {"backend": "oracle", "captions_file": str(root / "captions.json"), "n_captions": 5}})
    run_label(cfg)
    return cfg.run_dir
