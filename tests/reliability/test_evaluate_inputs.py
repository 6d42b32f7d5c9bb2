"""``relfactory evaluate`` refuses image folders it could score nothing from, and writes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from model import RLIPv2Config, build_model
from model.checkpoint import save_checkpoint
from pipeline.cli import main


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pth"
    return save_checkpoint(path, build_model(RLIPv2Config.tiny("parsed")), {"mode": "pretrain"})


def _evaluate(checkpoint: Path, images: Path, annotations: Path, meta: Path) -> int:
    return main(["evaluate", "--checkpoint", str(checkpoint), "--benchmark", "hico-det", "--annotations",
                 str(annotations), "--meta", str(meta), "--images", str(images), "--orchestrator", "none",
                 "--max-images", "3"])


@pytest.mark.parametrize("folder", ["missing", "empty"])
def test_a_missing_or_empty_image_folder_fails_and_writes_nothing(tmp_path: Path, checkpoint: Path, folder: str,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    images = tmp_path / folder
    if folder == "empty":
        images.mkdir()
    before = sorted(checkpoint.parent.iterdir())
    code = _evaluate(checkpoint, images, tmp_path / "test_hico.json", tmp_path / "hico_meta.json")
    err = capsys.readouterr().err.strip()
    assert code == 1 and f"--images {images}" in err and err.count("\n") == 0, err
    assert sorted(checkpoint.parent.iterdir()) == before, "no result file may be written"


def test_a_folder_without_the_benchmarks_images_fails_and_writes_nothing(
        tmp_path: Path, checkpoint: Path, shared_data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    images = tmp_path / "other-images"
    images.mkdir()
    Image.new("RGB", (32, 32)).save(images / "unrelated.jpg")
    before = sorted(checkpoint.parent.iterdir())
    code = _evaluate(checkpoint, images, shared_data / "hico-det" / "test_hico.subset.json",
                     shared_data / "hico-det" / "hico_meta.json")
    err = capsys.readouterr().err.strip()
    assert code == 1 and "none of the benchmark's 3 images could be read" in err, err
    assert sorted(checkpoint.parent.iterdir()) == before
