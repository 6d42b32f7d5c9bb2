"""R-Tagger inference: chunking, merging, encoder reuse and image batching."""

from __future__ import annotations

import torch

from model.nested_tensor import nested_tensor_from_images
from model.tagging import RTaggerPredictor, TaggingImage, relation_confidence

LABELS = ["person", "horse", "dog"]


def _image(seed: int, pairs: int, relations: int, height: int = 64, width: int = 80) -> TaggingImage:
    g = torch.Generator().manual_seed(seed)
    centres = torch.rand(pairs, 4, generator=g) * 0.6 + 0.2
    sizes = torch.rand(pairs, 2, generator=g) * 0.3 + 0.05
    return TaggingImage(
        key=seed, pixels=torch.randn(3, height, width, generator=g), entity_labels=LABELS,
        relation_texts=[f"relation {i}" for i in range(relations)],
        sub_boxes=torch.cat([centres[:, :2], sizes], 1), obj_boxes=torch.cat([centres[:, 2:], sizes], 1),
        sub_labels=torch.randint(0, 3, (pairs,), generator=g), obj_labels=torch.randint(0, 3, (pairs,), generator=g),
    )


def test_chunk_merging_equals_one_batched_pass(tiny_models: dict) -> None:
    """19 pairs with N_Q = 8: three chunks scored separately and merged give exactly
    what one forward pass over all three chunks (as a batch) gives."""
    model = tiny_models["rtagger"]
    image = _image(1, pairs=19, relations=3)
    merged = RTaggerPredictor(model, chunks_per_pass=1, reuse_encoder=False).predict([image])[0]

    n = model.num_queries
    bounds = [(0, 8), (8, 16), (16, 19)]
    assert n == 8
    targets = [{"sub_boxes": image.sub_boxes[a:b], "obj_boxes": image.obj_boxes[a:b],
                "sub_labels": image.sub_labels[a:b], "obj_labels": image.obj_labels[a:b]} for a, b in bounds]
    labels = ([LABELS] * 3, [image.relation_texts] * 3)
    with torch.no_grad():
        out = model(nested_tensor_from_images([image.pixels] * 3), labels, targets)
    big = relation_confidence(out, "paper")
    expected = torch.cat([big[k, : b - a] for k, (a, b) in enumerate(bounds)])
    assert merged.shape == (19, 3)
    torch.testing.assert_close(merged, expected, atol=1e-6, rtol=1e-5)


def test_encoder_reuse_gives_the_same_scores_as_re_encoding(tiny_models: dict) -> None:
    model = tiny_models["rtagger"]
    images = [_image(2, 21, 4), _image(3, 5, 2, 48, 64), _image(4, 0, 3)]
    reused = RTaggerPredictor(model, images_per_pass=1, chunks_per_pass=16, reuse_encoder=True).predict(images)
    again = RTaggerPredictor(model, images_per_pass=1, chunks_per_pass=1, reuse_encoder=False).predict(images)
    assert [r.shape for r in reused] == [(21, 4), (5, 2), (0, 3)]
    for a, b in zip(reused, again):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


def test_several_images_per_pass_match_one_at_a_time(tiny_models: dict) -> None:
    """The stage's batch size only changes speed: images of other sizes are never padded together."""
    model = tiny_models["rtagger"]
    images = [_image(5, 9, 3), _image(6, 4, 5, 48, 64), _image(7, 12, 1), _image(9, 3, 2, 48, 64)]
    one = RTaggerPredictor(model, images_per_pass=1).predict(images)
    four = RTaggerPredictor(model, images_per_pass=4, chunks_per_pass=2).predict(images)
    for a, b in zip(one, four):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


def test_relation_only_and_paper_modes_differ_by_entity_factors(tiny_models: dict) -> None:
    model = tiny_models["rtagger"]
    image = _image(8, 3, 2)
    paper = RTaggerPredictor(model, confidence="paper").predict([image])[0]
    official = RTaggerPredictor(model, confidence="relation-only").predict([image])[0]
    assert (paper <= official + 1e-7).all() and (paper > 0).all()
