"""VG PredCls end to end: VG-SGG files -> RelCLIP classifier (tiny CLIP) -> R@K / mR@K."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image, ImageDraw

from model.relclip.classifier import build_relclip
from model.relclip.clip_encoder import load_clip
from model.relclip.predcls import predcls_predictions, vg_relation_set
from model.relclip.tiny import save_tiny_clip
from stages.evaluation.vg_files import read_vg_sgg
from stages.evaluation.vg_sgg import evaluate_vg_sgg
from tests.evaluation.test_vg_sgg import _write_vg_files


@pytest.mark.slow
def test_predcls_after_training_on_the_split_recalls_its_relations(tmp_path: Path) -> None:
    _write_vg_files(tmp_path)
    graphs = read_vg_sgg(tmp_path, "test")
    for image, colour in zip(graphs.images, ("red", "blue")):
        width = int(max(image.boxes[:, 2].max(), 64)) + 8
        height = int(max(image.boxes[:, 3].max(), 64)) + 8
        picture = Image.new("RGB", (width, height), "white")
        ImageDraw.Draw(picture).rectangle(tuple(image.boxes[0].tolist()), fill=colour)
        picture.save(tmp_path / image.file_name, format="JPEG")
    encoder = load_clip(str(save_tiny_clip(tmp_path / "clip")), "cpu")
    data = vg_relation_set(encoder, graphs, tmp_path)
    assert data.predicates == graphs.predicates and len(data) == graphs.num_relations == 3
    torch.manual_seed(0)
    classifier = build_relclip(encoder, data, mode="dual", similarity=torch.eye(3), hidden=64)
    classifier.fit(data, steps=100, lr=3e-3)
    predictions = predcls_predictions(classifier, encoder, graphs, tmp_path)
    assert {len(p.pairs) for p in predictions.values()} == {2}  # two boxes each: both ordered pairs
    result = evaluate_vg_sgg(predictions, graphs.images, task="predcls", num_predicates=3,
                             predicate_names=graphs.predicates)
    assert result.metrics["R@20"] == pytest.approx(100.0)
    assert result.metrics["ngR@20"] == pytest.approx(100.0)
    # "wearing", "riding" and "on" all occur, so mR equals R here.
    assert result.metrics["mR@20"] == pytest.approx(100.0)
