"""R-Tagger queries from given boxes, with denoising noise and same-region masks for training.

A pair slot ``i`` holds a subject query at ``i`` and an object query at
``N + i``. Each query is ``[position | content]``: the position is a learned
projection of the (inverse-sigmoid) box, the content is the label-text
embedding of the box's class. In training the boxes get centre-shift and
scale noise and the labels are flipped with some probability (DN-DETR), and
queries that stand for the *same* ground-truth region (same class and same
box) may not attend to each other, so one noised copy cannot reveal another's
clean box. At inference nothing is noised and no region mask is applied
(official behaviour).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .box_ops import inverse_sigmoid


@dataclass
class PairSlots:
    """The given pairs of a batch, padded to N slots per image."""

    sub_boxes: Tensor  # (B, N, 4) cx, cy, w, h normalised
    obj_boxes: Tensor
    sub_labels: Tensor  # (B, N) index into the image's entity labels
    obj_labels: Tensor
    valid: Tensor  # (B, N) bool

    @classmethod
    def from_targets(cls, targets: list[dict[str, Tensor]], num_slots: int, device: torch.device) -> "PairSlots":
        batch = len(targets)
        sub_boxes = torch.zeros((batch, num_slots, 4), device=device)
        obj_boxes = torch.zeros((batch, num_slots, 4), device=device)
        sub_labels = torch.zeros((batch, num_slots), dtype=torch.long, device=device)
        obj_labels = torch.zeros((batch, num_slots), dtype=torch.long, device=device)
        valid = torch.zeros((batch, num_slots), dtype=torch.bool, device=device)
        for i, t in enumerate(targets):
            count = int(t["sub_boxes"].shape[0])
            if count > num_slots:
                raise ValueError(f"image {i} has {count} pairs but the model has {num_slots} query slots")
            sub_boxes[i, :count] = t["sub_boxes"].to(device)
            obj_boxes[i, :count] = t["obj_boxes"].to(device)
            sub_labels[i, :count] = t["sub_labels"].to(device)
            obj_labels[i, :count] = t["obj_labels"].to(device)
            valid[i, :count] = True
        return cls(sub_boxes, obj_boxes, sub_labels, obj_labels, valid)


def noise_boxes(boxes: Tensor, scale: float, generator: torch.Generator | None = None) -> Tensor:
    """Shift centres by up to ``scale * (w, h) / 2`` and sizes by up to ``scale * (w, h)``, uniformly."""
    if scale <= 0:
        return boxes
    spread = torch.cat((boxes[..., 2:] / 2, boxes[..., 2:]), dim=-1)
    uniform = torch.rand(boxes.shape, generator=generator, device=boxes.device) * 2 - 1
    return (boxes + uniform * spread * scale).clamp(0.0, 1.0)


def flip_labels(labels: Tensor, num_classes: Tensor, prob: float, generator: torch.Generator | None = None) -> Tensor:
    """With probability ``prob`` replace a label by a *different* class of the same image's label set.

    ``labels`` (B, N); ``num_classes`` (B,) real classes per image (the
    no-object token excluded). The official code drew the new class from
    ``[0, batch_size)``; here it comes from the image's own label set.
    """
    if prob <= 0:
        return labels
    classes = num_classes[:, None].expand_as(labels)
    flip = (torch.rand(labels.shape, generator=generator, device=labels.device) < prob) & (classes > 1)
    # A uniform draw over the other classes: offset in [1, K-1] added modulo K.
    offset = (torch.rand(labels.shape, generator=generator, device=labels.device) * (classes - 1).clamp(min=1)).long() + 1
    flipped = (labels + offset) % classes.clamp(min=1)
    return torch.where(flip, flipped, labels)


def same_region_mask(slots: PairSlots) -> Tensor:
    """(B, 2N, 2N) True where two *different* valid queries share class and box."""
    labels = torch.cat((slots.sub_labels, slots.obj_labels), dim=1)
    boxes = torch.cat((slots.sub_boxes, slots.obj_boxes), dim=1)
    valid = torch.cat((slots.valid, slots.valid), dim=1)
    same = (labels[:, :, None] == labels[:, None, :]) & (boxes[:, :, None] == boxes[:, None, :]).all(-1)
    same &= valid[:, :, None] & valid[:, None, :]
    eye = torch.eye(labels.shape[1], dtype=torch.bool, device=labels.device)
    return same & ~eye


def build_tagger_queries(label_embeds: Tensor, slots: PairSlots, coord_proj: nn.Module, training: bool,
                         box_noise_scale: float, label_noise_scale: float, num_real_labels: Tensor,
                         generator: torch.Generator | None = None) -> tuple[Tensor, Tensor, Tensor | None]:
    """Returns queries (B, 2N, 2C) ``[position | content]``, key padding (B, 2N) and the training mask."""
    sub_boxes, obj_boxes = slots.sub_boxes, slots.obj_boxes
    sub_labels, obj_labels = slots.sub_labels, slots.obj_labels
    if training:
        sub_boxes = noise_boxes(sub_boxes, box_noise_scale, generator)
        obj_boxes = noise_boxes(obj_boxes, box_noise_scale, generator)
        sub_labels = flip_labels(sub_labels, num_real_labels, label_noise_scale, generator)
        obj_labels = flip_labels(obj_labels, num_real_labels, label_noise_scale, generator)
    boxes = torch.cat((sub_boxes, obj_boxes), dim=1)
    labels = torch.cat((sub_labels, obj_labels), dim=1)
    position = coord_proj(inverse_sigmoid(boxes))
    content = torch.gather(label_embeds, 1, labels[..., None].expand(-1, -1, label_embeds.shape[-1]))
    valid = torch.cat((slots.valid, slots.valid), dim=1)
    queries = torch.cat((position, content), dim=-1) * valid[..., None]
    key_padding = ~valid
    # A chunk with no pair would leave attention nothing to attend to (NaN):
    # keep slot 0 open; its outputs are ignored.
    empty = ~slots.valid.any(dim=1)
    key_padding[empty, 0] = False
    attn_mask = same_region_mask(slots) if training else None
    return queries, key_padding, attn_mask
