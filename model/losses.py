"""Set losses of RLIPv2 and the R-Tagger.

``L = 2.5 L1 + 1 GIoU + 1 (CE_subject + CE_object) + 1 Focal_relation``, on
every decoder layer (auxiliary losses, each layer matched on its own). The
relation focal loss is the CornerNet-style one of the official code
(``_neg_loss``), normalised by the number of positive labels.

ParSeD/ParSeDA match queries to triplets with the Hungarian matcher and send
unmatched queries to the no-object token (weighted by ``eos_coef``). The
R-Tagger's query ``i`` *is* pair ``i`` (identity matching) and only the given
pairs are supervised.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .box_ops import box_cxcywh_to_xyxy, generalized_box_iou
from .configuration import RLIPv2Config
from .matcher import HungarianMatcher


def focal_relation_loss(pred: Tensor, target: Tensor, valid: Tensor, eps: float = 1e-6) -> Tensor:
    """CornerNet focal loss on sigmoid scores; ``valid`` masks padded relation slots."""
    pred = pred.clamp(eps, 1.0 - eps)
    pos = target.eq(1).float() * valid
    neg = target.lt(1).float() * valid
    neg_weights = torch.pow(1 - target, 4)
    pos_loss = (torch.log(pred) * torch.pow(1 - pred, 2) * pos).sum()
    neg_loss = (torch.log(1 - pred) * torch.pow(pred, 2) * neg_weights * neg).sum()
    num_pos = pos.sum()
    if num_pos == 0:
        return -neg_loss
    return -(pos_loss + neg_loss) / num_pos


class SetCriterion(nn.Module):
    def __init__(self, config: RLIPv2Config, matching: Literal["hungarian", "identity"] = "hungarian") -> None:
        super().__init__()
        self.matching = matching
        self.matcher = HungarianMatcher(config.cost_entity, config.cost_relation, config.cost_bbox, config.cost_giou)
        self.eos_coef = config.eos_coef
        self.weight_dict = {
            "loss_entity_ce": config.entity_loss_coef,
            "loss_relation": config.relation_loss_coef,
            "loss_sub_bbox": config.bbox_loss_coef,
            "loss_obj_bbox": config.bbox_loss_coef,
            "loss_sub_giou": config.giou_loss_coef,
            "loss_obj_giou": config.giou_loss_coef,
        }

    @classmethod
    def for_model(cls, config: RLIPv2Config) -> "SetCriterion":
        return cls(config, "identity" if config.variant == "rtagger" else "hungarian")

    def forward(self, outputs: dict[str, Any], targets: list[dict[str, Tensor]]) -> dict[str, Tensor]:
        """Unweighted losses per layer (suffix ``_i`` for auxiliary layer ``i``) and the weighted ``loss``."""
        num_pairs = max(float(sum(int(t["sub_labels"].numel()) for t in targets)), 1.0)
        losses = self._layer_losses(outputs, targets, num_pairs)
        for i, aux in enumerate(outputs.get("aux_outputs", [])):
            losses.update({f"{k}_{i}": v for k, v in self._layer_losses(aux, targets, num_pairs).items()})
        losses["loss"] = self.total(losses)
        return losses

    def total(self, losses: dict[str, Tensor]) -> Tensor:
        total = None
        for name, value in losses.items():
            base = name.rsplit("_", 1)[0] if name.rsplit("_", 1)[-1].isdigit() else name
            weight = self.weight_dict.get(base)
            if weight is None:
                continue
            total = weight * value if total is None else total + weight * value
        assert total is not None
        return total

    def match(self, outputs: dict[str, Any], targets: list[dict[str, Tensor]]) -> list[tuple[Tensor, Tensor]]:
        if self.matching == "identity":
            return [(torch.arange(t["sub_labels"].numel()),) * 2 for t in targets]
        return self.matcher(outputs, targets)

    def _layer_losses(self, outputs: dict[str, Any], targets: list[dict[str, Tensor]], num_pairs: float) -> dict[str, Tensor]:
        indices = self.match(outputs, targets)
        device = outputs["pred_sub_logits"].device
        batch_idx = torch.cat([torch.full_like(src, i) for i, (src, _) in enumerate(indices)]).to(device)
        query_idx = torch.cat([src for src, _ in indices]).to(device)
        losses = {"loss_entity_ce": self._entity_loss(outputs, targets, indices, batch_idx, query_idx)}
        losses["loss_relation"] = self.relation_loss(outputs, targets, indices, batch_idx, query_idx)
        losses.update(self._box_losses(outputs, targets, indices, batch_idx, query_idx, num_pairs))
        return losses

    def _entity_loss(self, outputs, targets, indices, batch_idx, query_idx) -> Tensor:  # type: ignore[no-untyped-def]
        total = outputs["pred_sub_logits"].new_zeros(())
        for role in ("sub", "obj"):
            logits = outputs[f"pred_{role}_logits"].float()
            matched = torch.cat([t[f"{role}_labels"][j] for t, (_, j) in zip(targets, indices)]).to(logits.device)
            if self.matching == "identity":
                if matched.numel():
                    total = total + F.cross_entropy(logits[batch_idx, query_idx], matched)
                continue
            no_object = outputs["no_object_index"].to(logits.device)
            target = no_object[:, None].expand(logits.shape[:2]).clone()
            target[batch_idx, query_idx] = matched
            weight = torch.where(target == no_object[:, None], self.eos_coef, 1.0)
            ce = F.cross_entropy(logits.transpose(1, 2), target, reduction="none")
            total = total + (ce * weight).sum() / weight.sum()
        return total

    def relation_loss(self, outputs, targets, indices, batch_idx, query_idx) -> Tensor:  # type: ignore[no-untyped-def]
        """Relation classification loss of the matched queries; subclasses override it (soft targets)."""
        logits = outputs["pred_verb_logits"].float()
        target = torch.zeros_like(logits)
        width = logits.shape[-1]
        rows = []
        for t, (_, j) in zip(targets, indices):
            labels = t["verb_labels"][j].float().to(logits.device)
            rows.append(F.pad(labels, (0, width - labels.shape[1])))
        if rows:
            target[batch_idx, query_idx] = torch.cat(rows)
        valid = (~outputs["relation_pad_mask"])[:, None, :].expand_as(logits).float()
        if self.matching == "identity":
            # Only the given pairs are supervised; empty slots carry no label.
            slot_valid = torch.zeros(logits.shape[:2], device=logits.device)
            slot_valid[batch_idx, query_idx] = 1.0
            valid = valid * slot_valid[..., None]
        return focal_relation_loss(logits.sigmoid(), target, valid)

    def _box_losses(self, outputs, targets, indices, batch_idx, query_idx, num_pairs: float) -> dict[str, Tensor]:  # type: ignore[no-untyped-def]
        out: dict[str, Tensor] = {}
        for role in ("sub", "obj"):
            pred = outputs[f"pred_{role}_boxes"][batch_idx, query_idx].float()
            tgt = torch.cat([t[f"{role}_boxes"][j] for t, (_, j) in zip(targets, indices)]).to(pred.device).float()
            if pred.numel() == 0:
                out[f"loss_{role}_bbox"] = outputs[f"pred_{role}_boxes"].sum() * 0
                out[f"loss_{role}_giou"] = outputs[f"pred_{role}_boxes"].sum() * 0
                continue
            exists = (tgt != 0).any(dim=1).float() if role == "obj" else torch.ones(len(tgt), device=pred.device)
            denom = num_pairs if role == "sub" else exists.sum() + 1e-4
            l1 = F.l1_loss(pred, tgt, reduction="none").sum(1)
            giou = 1 - torch.diag(generalized_box_iou(box_cxcywh_to_xyxy(pred), box_cxcywh_to_xyxy(tgt)))
            out[f"loss_{role}_bbox"] = (l1 * exists).sum() / denom
            out[f"loss_{role}_giou"] = (giou * exists).sum() / denom
        return out
