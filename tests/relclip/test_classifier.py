"""The RelCLIP predicate classifier: a tiny CLIP + RCL overfits relations on real and drawn pixels."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image, ImageDraw

from model.relclip.classifier import build_relclip, embed_samples
from model.relclip.clip_encoder import ClipEncoder, load_clip
from model.relclip.data import RelationSample, vcoco_samples
from model.relclip.tiny import save_tiny_clip


@pytest.fixture(scope="module")
def encoder(tmp_path_factory: pytest.TempPathFactory) -> ClipEncoder:
    return load_clip(str(save_tiny_clip(tmp_path_factory.mktemp("tiny-clip") / "clip")), "cpu")


def _drawn_samples(folder: Path) -> list[RelationSample]:
    samples = []
    for i, (colour, predicate) in enumerate([("red", "ride"), ("green", "hold"), ("blue", "feed")]):
        path = folder / f"{i}.png"
        image = Image.new("RGB", (96, 64), "white")
        ImageDraw.Draw(image).rectangle((10 + 8 * i, 10, 60, 50), fill=colour)
        image.save(path)
        samples.append(RelationSample(path, (10.0, 10.0, 40.0, 50.0), (30.0, 20.0, 80.0, 60.0),
                                      "person", "horse", predicate))
    # A second true predicate of the first pair: it must not be pushed down as a negative.
    samples.append(RelationSample(samples[0].image_path, samples[0].subject_box, samples[0].object_box,
                                  "person", "horse", "feed"))
    return samples


@pytest.mark.parametrize("mode", ["dual", "triple", "unary"])
def test_tiny_clip_classifier_fits_drawn_relations(encoder: ClipEncoder, tmp_path: Path, mode: str) -> None:
    data = embed_samples(encoder, _drawn_samples(tmp_path))
    assert data.predicates == ["feed", "hold", "ride"] and data.truth[0].tolist() == [True, False, True]
    assert data.also_true[0].tolist() == [True, False, False]  # sample 0 is "ride"; "feed" also holds
    torch.manual_seed(0)
    classifier = build_relclip(encoder, data, mode=mode, similarity=torch.eye(3), hidden=64)
    history = classifier.fit(data, steps=80, lr=3e-3, log_every=40)
    assert history.loss[-1] < history.loss[0]
    assert history.accuracy[-1] == 1.0


def test_tiny_clip_rcl_overfits_vcoco_relations_on_coco_pixels(encoder: ClipEncoder, shared_data: Path) -> None:
    coco = shared_data / "coco-mini"
    samples = []
    for split in ("train", "val"):
        samples += vcoco_samples(shared_data / "v-coco" / f"vcoco_{split}.json",
                                 coco / "annotations" / "instances_train2017.json", coco / "train2017")
    # 69468: a person holds and cuts with a knife; 211325: looks at and surfs with a surfboard; 183872 snowboards.
    assert sorted((s.subject, s.predicate, s.object) for s in samples) == [
        ("person", "cut with", "knife"), ("person", "hold", "knife"), ("person", "look", "surfboard"),
        ("person", "snowboard with", "snowboard"), ("person", "surf with", "surfboard")]
    data = embed_samples(encoder, samples)
    torch.manual_seed(0)
    classifier = build_relclip(encoder, data, mode="dual")  # MiniLM similarities, ε = 0.7
    history = classifier.fit(data, steps=60, lr=1e-3, log_every=20)
    print(f"V-COCO on coco-mini: loss {history.loss[0]:.3f} -> {history.loss[-1]:.3f}, "
          f"accuracy {history.accuracy[0]:.2f} -> {history.accuracy[-1]:.2f}")
    assert history.loss[-1] < 0.5 * history.loss[0]
    assert history.accuracy[-1] == 1.0
