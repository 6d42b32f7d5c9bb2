"""Hungarian matching, set losses and a two-image over-fit."""

from __future__ import annotations

import torch

from model import RLIPv2Config, build_model
from model.heads import MASKED_LOGIT
from model.losses import SetCriterion, focal_relation_loss
from model.matcher import HungarianMatcher

from .conftest import ENTITIES, RELATIONS, make_images, make_targets


def test_matcher_finds_the_queries_that_predict_each_triplet() -> None:
    target = make_targets()[0]
    n = 5
    sub_boxes = torch.full((1, n, 4), 0.1)
    obj_boxes = torch.full((1, n, 4), 0.1)
    sub_logits = torch.zeros(1, n, 4)
    obj_logits = torch.zeros(1, n, 4)
    verb_logits = torch.full((1, n, 3), -5.0)
    # Query 3 predicts triplet 0 and query 1 predicts triplet 1.
    for query, t in ((3, 0), (1, 1)):
        sub_boxes[0, query], obj_boxes[0, query] = target["sub_boxes"][t], target["obj_boxes"][t]
        sub_logits[0, query, target["sub_labels"][t]] = 5.0
        obj_logits[0, query, target["obj_labels"][t]] = 5.0
        verb_logits[0, query] = target["verb_labels"][t] * 10 - 5
    outputs = {"pred_sub_logits": sub_logits, "pred_obj_logits": obj_logits, "pred_verb_logits": verb_logits,
               "pred_sub_boxes": sub_boxes, "pred_obj_boxes": obj_boxes}
    (rows, cols), = HungarianMatcher()(outputs, [target])
    assert dict(zip(cols.tolist(), rows.tolist())) == {0: 3, 1: 1}


def test_focal_relation_loss_ignores_padding_and_rewards_correct_scores() -> None:
    target = torch.tensor([[[1.0, 0.0, 0.0]]])
    valid = torch.tensor([[[1.0, 1.0, 0.0]]])
    good = focal_relation_loss(torch.tensor([[[0.95, 0.05, 0.99]]]), target, valid)
    bad = focal_relation_loss(torch.tensor([[[0.05, 0.95, 0.0]]]), target, valid)
    assert 0 <= good < 0.01 < bad
    # The padded third slot does not contribute, whatever its score.
    same = focal_relation_loss(torch.tensor([[[0.95, 0.05, 0.01]]]), target, valid)
    torch.testing.assert_close(good, same)


def test_unmatched_queries_learn_the_no_object_token() -> None:
    config = RLIPv2Config.tiny("parsed")
    criterion = SetCriterion(config)
    targets = [dict(make_targets()[1])]
    n = config.num_queries
    logits = torch.full((1, n, 3), -5.0)
    logits[..., 2] = 5.0  # everything says "no objects" (index 2 for this image)
    outputs = {"pred_sub_logits": logits.clone(), "pred_obj_logits": logits.clone(),
               "pred_verb_logits": torch.full((1, n, 2), -5.0), "pred_sub_boxes": torch.full((1, n, 4), 0.5),
               "pred_obj_boxes": torch.full((1, n, 4), 0.5), "relation_pad_mask": torch.zeros(1, 2, dtype=torch.bool),
               "no_object_index": torch.tensor([2])}
    losses = criterion(outputs, targets)
    # The matched query is wrong (weight 1); the n - 1 unmatched ones are right
    # and weighted by eos_coef, as in DETR's weighted cross-entropy mean.
    log_z = torch.logsumexp(torch.tensor([5.0, -5.0, -5.0]), 0)
    wrong, right = log_z + 5.0, log_z - 5.0
    eos = config.eos_coef
    expected = 2 * (wrong + (n - 1) * eos * right) / (1 + (n - 1) * eos)
    torch.testing.assert_close(losses["loss_entity_ce"], expected)
    assert set(criterion.weight_dict) <= set(losses)


def test_padded_entity_slots_never_get_probability() -> None:
    logits = torch.tensor([[[0.0, 0.0, MASKED_LOGIT]]])
    assert logits.softmax(-1)[0, 0, 2] == 0


def _overfit(variant: str, steps: int) -> tuple[float, float]:
    torch.manual_seed(0)
    config = RLIPv2Config.tiny(variant)
    model = build_model(config).train()
    criterion = SetCriterion.for_model(config)
    optimiser = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-3)
    images, targets = make_images(), make_targets()
    history = []
    for _ in range(steps):
        loss = criterion(model(images, (ENTITIES, RELATIONS), targets), targets)["loss"]
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        history.append(float(loss.detach()))
    return sum(history[:3]) / 3, sum(history[-3:]) / 3


def test_parsed_loss_decreases_when_overfitting_two_images() -> None:
    first, last = _overfit("parsed", 40)
    assert last < 0.6 * first, (first, last)


def test_rtagger_loss_decreases_when_overfitting_two_images() -> None:
    first, last = _overfit("rtagger", 40)
    assert last < 0.6 * first, (first, last)
