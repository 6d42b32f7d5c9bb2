"""Fixtures of the evaluation tests."""

from __future__ import annotations

import numpy as np
import pytest

from storage.downstream import COCO_CATEGORIES, HicoMeta


@pytest.fixture(scope="session")
def tiny_meta() -> HicoMeta:
    """Three HOI classes: 0 = (bicycle, verb 1), 1 = (bicycle, verb 2), 2 = (cup, verb 3, rare)."""
    objects = tuple(sorted(name.replace(" ", "_") for _, name in COCO_CATEGORIES))
    verbs = tuple(f"verb_{i}" for i in range(1, 118))
    b, c = objects.index("bicycle"), objects.index("cup")
    return HicoMeta(
        objects=objects,
        verbs=verbs,
        correspondence=np.asarray([[0, b, 0], [1, b, 1], [2, c, 2]]),
        rare=frozenset({2}),
        non_rare=frozenset({0, 1}),
    )
