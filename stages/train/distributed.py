"""Where a training process runs: single process, torchrun/DDP, or a Ray Train worker.

``torchrun`` sets ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` and the rendezvous
address; :func:`init_distributed` joins that process group. Ray Train's
``TorchTrainer`` creates the process group itself before calling the worker
function, so an already initialised group is simply used. Either way the
training loop sees a :class:`DistContext` and does not care who launched it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def resolve_device(spec: str = "auto", local_rank: int = 0) -> torch.device:
    if spec == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    device = torch.device(spec)
    if device.type == "cuda" and device.index is None:
        device = torch.device(f"cuda:{local_rank}")
    return device


def init_distributed(device: str = "auto") -> DistContext:
    """Join the process group torchrun (or Ray Train) prepared; a plain process is rank 0 of 1."""
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if dist.is_available() and dist.is_initialized():
        ctx_device = resolve_device(device, local_rank)
        return DistContext(dist.get_rank(), dist.get_world_size(), local_rank, ctx_device)
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    ctx_device = resolve_device(device, local_rank)
    if world_size > 1:
        backend = "nccl" if ctx_device.type == "cuda" else "gloo"
        if ctx_device.type == "cuda":
            torch.cuda.set_device(ctx_device)
        dist.init_process_group(backend=backend)
        return DistContext(dist.get_rank(), dist.get_world_size(), local_rank, ctx_device)
    return DistContext(device=ctx_device)


def wrap_model(model: nn.Module, ctx: DistContext) -> nn.Module:
    if not ctx.distributed:
        return model
    # Some parameters get no gradient in some steps (e.g. language layers when a
    # batch has no relation text of a kind), as in the official setup.
    device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=device_ids, find_unused_parameters=True)


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def barrier(ctx: DistContext) -> None:
    if ctx.distributed:
        dist.barrier()


def broadcast_object(value: Any, ctx: DistContext) -> Any:
    """Rank 0's ``value`` on every rank."""
    if not ctx.distributed:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_reduce_mean(value: float, ctx: DistContext) -> float:
    if not ctx.distributed:
        return value
    tensor = torch.tensor([value], dtype=torch.float64,
                          device=ctx.device if ctx.device.type == "cuda" else torch.device("cpu"))
    dist.all_reduce(tensor)
    return float(tensor.item()) / ctx.world_size
