"""The resumable mixed sampler: seeded order, exact resume, rank slices, source weights."""

from __future__ import annotations

from collections import Counter

import pytest

from stages.train.sampler import MixedSampler, SourceOrder


def _flat(batches) -> list:  # type: ignore[no-untyped-def]
    return [ref for batch in batches for ref in batch]


def test_a_pass_visits_every_row_once_part_by_part() -> None:
    order = SourceOrder([3, 0, 5, 2], seed=7)
    visited = [order.locate(k) for k in range(10)]
    assert sorted(visited) == sorted((p, r) for p, n in enumerate([3, 0, 5, 2]) for r in range(n))
    # Rows of a part come together (one part decoded at a time).
    parts = [p for p, _ in visited]
    assert sum(1 for a, b in zip(parts, parts[1:]) if a != b) == 2
    # The next pass is another permutation.
    assert [order.locate(k) for k in range(10, 20)] != visited


def test_order_is_a_function_of_the_seed() -> None:
    a = MixedSampler([[4, 4]], [1.0], 2, seed=1)
    b = MixedSampler([[4, 4]], [1.0], 2, seed=1)
    c = MixedSampler([[4, 4]], [1.0], 2, seed=2)
    assert _flat(a.batches(0, 8)) == _flat(b.batches(0, 8))
    assert _flat(a.batches(0, 8)) != _flat(c.batches(0, 8))


def test_resuming_at_any_step_continues_the_same_stream() -> None:
    sampler = MixedSampler([[5, 3], [7]], [1.0, 0.5], 3, seed=3)
    straight = list(sampler.batches(0, 12))
    for start in (1, 4, 5, 9):
        assert list(sampler.batches(start, 12 - start)) == straight[start:]


def test_ranks_split_each_global_batch() -> None:
    single = list(MixedSampler([[6, 6]], [1.0], 4, seed=0).batches(0, 6))
    ranks = [list(MixedSampler([[6, 6]], [1.0], 4, seed=0, rank=r, world_size=2).batches(0, 6)) for r in (0, 1)]
    for step, batch in enumerate(single):
        assert ranks[0][step] + ranks[1][step] == batch


def test_weights_are_repeat_factors_per_epoch() -> None:
    sampler = MixedSampler([[10], [40]], [2.0, 0.25], 5, seed=0)
    assert sampler.epoch_size == 30 and sampler.steps_per_epoch == 6
    per_source = Counter(ref.source for ref in _flat(sampler.batches(0, 6)))
    assert per_source == {0: 20, 1: 10}
    # Source 0 went through two full passes; source 1 saw 10 distinct rows.
    assert len({(r.part, r.row) for r in _flat(sampler.batches(0, 6)) if r.source == 1}) == 10


def test_augmentation_seeds_differ_per_sample_and_epoch() -> None:
    refs = _flat(MixedSampler([[4]], [1.0], 2, seed=0).batches(0, 4))
    assert len({r.seed for r in refs}) == len(refs)


def test_invalid_setups_are_refused() -> None:
    with pytest.raises(ValueError, match="divisible"):
        MixedSampler([[8]], [1.0], 3, world_size=2)
    with pytest.raises(ValueError, match="fewer than one global batch"):
        MixedSampler([[2]], [1.0], 4)
