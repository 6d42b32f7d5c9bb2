"""RCL as RLIPv2's auxiliary loss: the term on hand-made logits, and the criterion on a tiny model."""

from __future__ import annotations

import math

import pytest
import torch

from model import RLIPv2Config, build_model
from model.relclip.rlipv2_aux import RCL_LOSS, RCLCriterion, rcl_relation_term
from stages.train.labels import SoftRelationCriterion
from tests.model.conftest import ENTITIES, RELATIONS, make_images, make_targets


def test_term_uses_matched_queries_hard_labels_and_the_dictionary() -> None:
    logits = torch.zeros((1, 2, 4))  # last column: padding past the 3 relation texts
    logits[0, 1] = torch.tensor([2.0, 1.0, 0.0, 9.0])
    # The matched query 1 is labelled with text 0, and RPL gave text 1 (a synonym, 0.8) a soft 0.8.
    targets = [{"verb_labels": torch.tensor([[1.0, 0.8, 0.0]])}]
    indices = [(torch.tensor([1]), torch.tensor([0]))]
    similarity = torch.tensor([[1.0, 0.8, 0.2], [0.8, 1.0, 0.1], [0.2, 0.1, 1.0]])
    value = rcl_relation_term(logits, targets, indices, torch.tensor([0]), torch.tensor([1]), similarity)
    # Only text 2 is a negative (text 1 is a synonym and also a pseudo-label; column 3 is padding).
    assert value.item() == pytest.approx(math.log(1 + math.exp(0.0 - 2.0)))
    # Without similarities every real text is a negative but the pseudo-label; padding never is.
    plain = rcl_relation_term(logits, targets, indices, torch.tensor([0]), torch.tensor([1]), None,
                              pad_mask=torch.tensor([[False, False, False, True]]))
    assert plain.item() == pytest.approx(math.log(1 + math.exp(0.0 - 2.0)))


def test_criterion_adds_weighted_rcl_to_every_layer() -> None:
    torch.manual_seed(0)
    config = RLIPv2Config.tiny("parsed")
    model = build_model(config).eval()
    with torch.no_grad():
        outputs = model(make_images(), (ENTITIES, RELATIONS))
    targets = make_targets()
    base = SoftRelationCriterion.for_model(config)(outputs, targets)
    criterion = RCLCriterion.for_model(config, weight=0.5)
    criterion.similarity = None  # plain InfoNCE over each image's texts
    losses = criterion(outputs, targets)
    rcl_keys = [k for k in losses if k.startswith(RCL_LOSS)]
    assert len(rcl_keys) == 1 + len(outputs.get("aux_outputs", []))
    assert all(torch.isfinite(losses[k]) and losses[k] > 0 for k in rcl_keys)
    extra = sum(0.5 * losses[k] for k in rcl_keys)
    assert losses["loss"].item() == pytest.approx((base["loss"] + extra).item(), rel=1e-5)
