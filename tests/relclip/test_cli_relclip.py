"""``relfactory relclip train`` and ``relclip predcls`` as a user runs them (tiny CLIP, tiny VG files)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from model.relclip.tiny import save_tiny_clip
from pipeline.cli import main
from stages.evaluation.vg_files import read_vg_sgg
from tests.evaluation.test_vg_sgg import _write_vg_files


@pytest.mark.slow
def test_train_on_vg_then_predcls_writes_recalls(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write_vg_files(tmp_path)
    for image, colour in zip(read_vg_sgg(tmp_path, "test").images, ("red", "blue")):
        picture = Image.new("RGB", (int(image.boxes[:, 2].max()) + 8, int(image.boxes[:, 3].max()) + 8), "white")
        ImageDraw.Draw(picture).rectangle(tuple(image.boxes[0].tolist()), fill=colour)
        picture.save(tmp_path / image.file_name, format="JPEG")
    clip = save_tiny_clip(tmp_path / "clip")
    checkpoint = tmp_path / "relclip.pt"
    assert main(["relclip", "train", "--vg", str(tmp_path), "--vg-images", str(tmp_path), "--vg-split", "test",
                 "--clip-model", str(clip), "--steps", "100", "--lr", "3e-3", "--device", "cpu",
                 "--output", str(checkpoint)]) == 0
    out = capsys.readouterr().out
    assert checkpoint.is_file() and '"final_loss"' in out and "step  100" in out
    # The refined split keeps two of the three predicates.
    refined = tmp_path / "refined.json"
    refined.write_text(json.dumps(["riding", "on"]))
    assert main(["relclip", "predcls", "--checkpoint", str(checkpoint), "--vg", str(tmp_path), "--vg-images",
                 str(tmp_path), "--predicates", str(refined), "--device", "cpu"]) == 0
    result = json.loads((tmp_path / "relclip.pt.eval-vg-predcls.json").read_text())
    assert result["counts"] == {"images": 1, "gt_relations": 2, "predicates": 2, "predicted_images": 1}
    assert set(result["metrics"]) >= {"R@20", "R@50", "R@100", "mR@20", "ngR@100", "ng-mR@100"}
    assert result["metrics"]["ngR@100"] == 100.0  # 2 ordered pairs x 2 predicates: all within K
    assert result["metrics"]["R@100"] == 100.0  # the trained head picks the right predicate per pair
