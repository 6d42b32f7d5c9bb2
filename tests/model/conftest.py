"""Tiny RLIPv2 models and synthetic inputs shared by the model tests."""

from __future__ import annotations

import pytest
import torch

from model import RLIPv2Config, build_model

ENTITIES = [["person", "horse", "dog"], ["person", "bicycle"]]
RELATIONS = [["ride", "feed", "next to"], ["ride", "hold"]]


def make_images(seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(3, 64, 80, generator=g), torch.randn(3, 56, 64, generator=g)]


def make_targets() -> list[dict[str, torch.Tensor]]:
    """Two images' ground-truth triplets; labels index ENTITIES / RELATIONS."""
    return [
        {
            "sub_boxes": torch.tensor([[0.30, 0.40, 0.20, 0.50], [0.30, 0.40, 0.20, 0.50]]),
            "obj_boxes": torch.tensor([[0.55, 0.60, 0.40, 0.40], [0.80, 0.70, 0.20, 0.20]]),
            "sub_labels": torch.tensor([0, 0]),
            "obj_labels": torch.tensor([1, 2]),
            "verb_labels": torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]]),
        },
        {
            "sub_boxes": torch.tensor([[0.50, 0.35, 0.30, 0.50]]),
            "obj_boxes": torch.tensor([[0.50, 0.70, 0.50, 0.30]]),
            "sub_labels": torch.tensor([0]),
            "obj_labels": torch.tensor([1]),
            "verb_labels": torch.tensor([[1.0, 0.0]]),
        },
    ]


@pytest.fixture(scope="session")
def tiny_models() -> dict[str, torch.nn.Module]:
    out = {}
    for variant in ("parsed", "parseda", "rtagger"):
        torch.manual_seed(0)
        out[variant] = build_model(RLIPv2Config.tiny(variant)).eval()
    return out


@pytest.fixture(autouse=True)
def _single_thread():  # type: ignore[no-untyped-def]
    """Tiny models gain nothing from threads, and on a shared 2-core machine
    OpenMP spinning under contention slows them by orders of magnitude."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
