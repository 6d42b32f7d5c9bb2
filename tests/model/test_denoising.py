"""R-Tagger query construction: noise, label flips and same-region attention masks."""

from __future__ import annotations

import torch

from model.denoising import PairSlots, build_tagger_queries, flip_labels, noise_boxes, same_region_mask


def _slots() -> PairSlots:
    person = [0.3, 0.4, 0.2, 0.5]
    horse = [0.6, 0.6, 0.4, 0.4]
    dog = [0.8, 0.7, 0.2, 0.2]
    # Pairs: (person, horse), (person, dog), (horse, person); 4 slots, last empty.
    targets = [{
        "sub_boxes": torch.tensor([person, person, horse]),
        "obj_boxes": torch.tensor([horse, dog, person]),
        "sub_labels": torch.tensor([0, 0, 1]),
        "obj_labels": torch.tensor([1, 2, 0]),
    }]
    return PairSlots.from_targets(targets, num_slots=4, device=torch.device("cpu"))


def test_mask_blocks_exactly_the_same_region_queries() -> None:
    mask = same_region_mask(_slots())[0]
    # Query layout: subjects 0..3, objects 4..7. Regions: person = {0, 1, 6},
    # horse = {2, 4}, dog = {5}; slot 3/7 is empty.
    person, horse = [0, 1, 6], [2, 4]
    expected = torch.zeros(8, 8, dtype=torch.bool)
    for region in (person, horse):
        for i in region:
            for j in region:
                if i != j:
                    expected[i, j] = True
    assert torch.equal(mask, expected)


def test_same_box_with_another_label_is_a_different_region() -> None:
    slots = _slots()
    slots.obj_labels[0, 1] = 0  # the dog box now labelled "person": same label as person, other box
    slots.obj_boxes[0, 1] = slots.sub_boxes[0, 0]  # ... and now the same box as well
    assert same_region_mask(slots)[0, 0, 5]
    slots.obj_labels[0, 1] = 2  # same box, other label
    assert not same_region_mask(slots)[0, 0, 5]


def test_box_noise_stays_within_scale() -> None:
    g = torch.Generator().manual_seed(0)
    boxes = torch.tensor([[0.5, 0.5, 0.2, 0.4]]).repeat(2000, 1)
    noisy = noise_boxes(boxes, 0.4, g)
    shift = (noisy - boxes).abs()
    assert (shift[:, 0] <= 0.4 * 0.1 + 1e-6).all() and (shift[:, 1] <= 0.4 * 0.2 + 1e-6).all()
    assert (shift[:, 2] <= 0.4 * 0.2 + 1e-6).all() and (shift[:, 3] <= 0.4 * 0.4 + 1e-6).all()
    assert shift.max() > 0.05  # noise is actually applied
    assert torch.equal(noise_boxes(boxes, 0.0, g), boxes)


def test_label_flips_stay_in_the_label_set_and_change_the_label() -> None:
    g = torch.Generator().manual_seed(0)
    labels = torch.tensor([[0, 1, 2, 3] * 500, [0, 1, 0, 1] * 500])
    num_classes = torch.tensor([4, 2])
    flipped = flip_labels(labels, num_classes, 0.2, g)
    changed = flipped != labels
    assert 0.15 < changed.float().mean() < 0.25
    assert (flipped[0] < 4).all() and (flipped[1] < 2).all() and (flipped >= 0).all()
    # With two classes a flip can only go to the other one.
    assert torch.equal(flipped[1][changed[1]], 1 - labels[1][changed[1]])
    # A single-class image is never flipped.
    single = flip_labels(torch.zeros(1, 50, dtype=torch.long), torch.tensor([1]), 1.0, g)
    assert (single == 0).all()


def test_queries_without_noise_at_inference() -> None:
    slots = _slots()
    embeds = torch.randn(1, 4, 6)
    proj = torch.nn.Linear(4, 6)
    q1, kpm, mask = build_tagger_queries(embeds, slots, proj, False, 0.4, 0.2, torch.tensor([3]))
    q2, _, _ = build_tagger_queries(embeds, slots, proj, False, 0.4, 0.2, torch.tensor([3]))
    assert mask is None and torch.equal(q1, q2)
    assert kpm[0].tolist() == [False, False, False, True] * 2
    # Content half is the label embedding of each query's class; empty slots are zero.
    torch.testing.assert_close(q1[0, 4, 6:], embeds[0, 1])
    assert q1[0, 3].abs().sum() == 0
    _, _, train_mask = build_tagger_queries(embeds, slots, proj, True, 0.4, 0.2, torch.tensor([3]))
    assert train_mask is not None and torch.equal(train_mask, same_region_mask(slots))


def test_empty_chunk_keeps_one_key_open() -> None:
    slots = PairSlots.from_targets([{"sub_boxes": torch.zeros(0, 4), "obj_boxes": torch.zeros(0, 4),
                                     "sub_labels": torch.zeros(0, dtype=torch.long),
                                     "obj_labels": torch.zeros(0, dtype=torch.long)}], 2, torch.device("cpu"))
    _, kpm, _ = build_tagger_queries(torch.randn(1, 2, 4), slots, torch.nn.Linear(4, 4), False, 0.0, 0.0,
                                     torch.tensor([1]))
    assert kpm[0].tolist() == [False, True, True, True]
