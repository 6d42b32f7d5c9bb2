"""The R-Tagger's relation confidence (paper formula and the official relation-only score)."""

from __future__ import annotations

import math

import pytest
import torch

from model.heads import MASKED_LOGIT
from model.tagging import relation_confidence


def _outputs() -> dict[str, torch.Tensor]:
    # One image, one pair slot, entity labels [person, horse, <no objects>, <pad>], relations [ride, feed].
    sub = torch.tensor([[[2.0, 0.0, 3.0, MASKED_LOGIT]]])
    obj = torch.tensor([[[0.0, 1.0, 0.0, MASKED_LOGIT]]])
    verb = torch.tensor([[[0.0, math.log(3.0)]]])
    return {"pred_sub_logits": sub, "pred_obj_logits": obj, "pred_verb_logits": verb,
            "no_object_index": torch.tensor([2])}


def test_paper_confidence_multiplies_top1_entity_probabilities_and_relation_sigmoid() -> None:
    out = _outputs()
    conf = relation_confidence(out, "paper")
    z_sub = math.exp(2) + 1 + math.exp(3)
    z_obj = 2 + math.e
    # The no-object token (prob e^3/z) is excluded from the top-1: person wins with e^2/z.
    top_sub, top_obj = math.exp(2) / z_sub, math.e / z_obj
    expected = torch.tensor([[[top_sub * top_obj * 0.5, top_sub * top_obj * 0.75]]])
    torch.testing.assert_close(conf, expected, rtol=1e-5, atol=1e-7)


def test_relation_only_confidence_is_the_sigmoid() -> None:
    torch.testing.assert_close(relation_confidence(_outputs(), "relation-only"), torch.tensor([[[0.5, 0.75]]]))


def test_unknown_mode_is_rejected() -> None:
    with pytest.raises(ValueError):
        relation_confidence(_outputs(), "max")  # type: ignore[arg-type]
