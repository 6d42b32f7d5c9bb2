"""Hungarian matching of predicted triplets to ground-truth triplets (QPIC / RLIP style).

The cost of giving query ``q`` the triplet ``t`` adds: the negative softmax
probability of the subject and of the object class, a relation cost that
rewards high sigmoid scores on the true relations and low ones elsewhere,
the larger of the subject/object L1 box distances and the larger of the
negative subject/object GIoUs. Label sets differ per image, so images are
matched one by one (scipy's ``linear_sum_assignment``).
"""

from __future__ import annotations

from typing import Any

import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor, nn

from .box_ops import box_cxcywh_to_xyxy, generalized_box_iou


class HungarianMatcher(nn.Module):
    def __init__(self, cost_entity: float = 1.0, cost_relation: float = 1.0, cost_bbox: float = 2.5,
                 cost_giou: float = 1.0) -> None:
        super().__init__()
        self.cost_entity, self.cost_relation = cost_entity, cost_relation
        self.cost_bbox, self.cost_giou = cost_bbox, cost_giou

    @torch.no_grad()
    def forward(self, outputs: dict[str, Any], targets: list[dict[str, Tensor]]) -> list[tuple[Tensor, Tensor]]:
        indices = []
        for b, target in enumerate(targets):
            cost = self.cost_matrix(outputs, target, b)
            if cost.numel() == 0:
                empty = torch.zeros(0, dtype=torch.long)
                indices.append((empty, empty))
                continue
            rows, cols = linear_sum_assignment(cost.cpu().numpy())
            indices.append((torch.as_tensor(rows, dtype=torch.long), torch.as_tensor(cols, dtype=torch.long)))
        return indices

    def cost_matrix(self, outputs: dict[str, Any], target: dict[str, Tensor], b: int) -> Tensor:
        """(num_queries, num_triplets) matching cost for image ``b``."""
        sub_prob = outputs["pred_sub_logits"][b].float().softmax(-1)
        obj_prob = outputs["pred_obj_logits"][b].float().softmax(-1)
        verb_labels = target["verb_labels"].float()
        verb_prob = outputs["pred_verb_logits"][b].float().sigmoid()[:, : verb_labels.shape[1]]
        sub_boxes, obj_boxes = outputs["pred_sub_boxes"][b].float(), outputs["pred_obj_boxes"][b].float()
        if target["sub_labels"].numel() == 0:
            return sub_prob.new_zeros((sub_prob.shape[0], 0))

        cost_class = -sub_prob[:, target["sub_labels"]] - obj_prob[:, target["obj_labels"]]
        positives = verb_labels.t()
        cost_relation = -(
            verb_prob @ positives / (positives.sum(0, keepdim=True) + 1e-4)
            + (1 - verb_prob) @ (1 - positives) / ((1 - positives).sum(0, keepdim=True) + 1e-4)
        ) / 2

        tgt_sub, tgt_obj = target["sub_boxes"].float(), target["obj_boxes"].float()
        cost_sub_bbox = torch.cdist(sub_boxes, tgt_sub, p=1)
        cost_obj_bbox = torch.cdist(obj_boxes, tgt_obj, p=1)
        # A triplet without an object box (all zeros) is matched on its subject alone.
        has_obj = (tgt_obj != 0).any(dim=1)
        cost_obj_bbox = cost_obj_bbox * has_obj[None]
        cost_bbox = torch.maximum(cost_sub_bbox, cost_obj_bbox)
        cost_sub_giou = -generalized_box_iou(box_cxcywh_to_xyxy(sub_boxes), box_cxcywh_to_xyxy(tgt_sub))
        cost_obj_giou = -generalized_box_iou(box_cxcywh_to_xyxy(obj_boxes), box_cxcywh_to_xyxy(tgt_obj))
        cost_obj_giou = torch.where(has_obj[None], cost_obj_giou, cost_sub_giou)
        cost_giou = torch.maximum(cost_sub_giou, cost_obj_giou)
        return (self.cost_entity * cost_class + self.cost_relation * cost_relation
                + self.cost_bbox * cost_bbox + self.cost_giou * cost_giou)
