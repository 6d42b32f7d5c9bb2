"""AdamW with RLIPv2's three learning rates and a step-wise epoch schedule.

The backbone and the text encoder start from pre-trained weights and move 10x
slower than the rest (1.41e-5 vs 1.41e-4). The schedule is expressed per
*step* (``lr x gamma`` once ``step // steps_per_epoch`` passes each drop
epoch) so that it can be resumed at any step, not only at epoch boundaries.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

BACKBONE_PREFIX = "backbone."
TEXT_ENCODER_PREFIX = "text_encoder."


def param_groups(model: nn.Module, lr: float, lr_backbone: float, lr_text_encoder: float,
                 weight_decay: float) -> list[dict[str, Any]]:
    """Three groups by parameter name; frozen parameters (``requires_grad=False``) are left out."""
    groups: dict[str, list[nn.Parameter]] = {"main": [], "backbone": [], "text_encoder": []}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        name = name.removeprefix("module.")  # DDP wrapper
        if name.startswith(BACKBONE_PREFIX):
            groups["backbone"].append(param)
        elif name.startswith(TEXT_ENCODER_PREFIX):
            groups["text_encoder"].append(param)
        else:
            groups["main"].append(param)
    rates = {"main": lr, "backbone": lr_backbone, "text_encoder": lr_text_encoder}
    return [{"params": params, "lr": rates[key], "weight_decay": weight_decay, "name": key}
            for key, params in groups.items() if params]


def build_optimizer(model: nn.Module, lr: float, lr_backbone: float, lr_text_encoder: float,
                    weight_decay: float) -> torch.optim.AdamW:
    return torch.optim.AdamW(param_groups(model, lr, lr_backbone, lr_text_encoder, weight_decay),
                             lr=lr, weight_decay=weight_decay)


def lr_factor(step: int, steps_per_epoch: int, drop_epochs: Sequence[int], gamma: float) -> float:
    epoch = step // max(1, steps_per_epoch)
    return gamma ** sum(1 for e in drop_epochs if epoch >= e)


def build_scheduler(optimizer: torch.optim.Optimizer, steps_per_epoch: int, drop_epochs: Sequence[int],
                    gamma: float) -> torch.optim.lr_scheduler.LambdaLR:
    drops = sorted(drop_epochs)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, steps_per_epoch, drops, gamma))
