"""A seeded, resumable sampler over several weighted sources.

Everything the sampler yields is a pure function of ``(seed, global step)``,
so resuming needs nothing but the step counter: no replay, no saved
permutations. Per epoch, source ``i`` contributes ``round(w_i * len_i)``
samples (weights are repeat factors: 0.5 takes half of a source per epoch, 2
takes it twice), interleaved in a seeded random order. Each source walks its
own stream of *passes*; a pass visits its parts in a seeded order and the rows
of each part in a seeded permutation, so only one part at a time needs to be
decoded (the shuffle the shard layout makes cheap).

With data parallelism the global batch of a step is cut into ``world``
contiguous slices and rank ``r`` takes slice ``r``; every rank computes the
same global order, so no communication is needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np

_SALT_EPOCH, _SALT_PASS, _SALT_PART, _SALT_AUG = 0x5EED, 0x9A55, 0x9A27, 0xA06


def _rng(*key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(k) for k in key]))


@dataclass(frozen=True)
class SampleRef:
    """Which row to load, and the seed of its augmentation (so a resumed run redraws it identically)."""

    source: int
    part: int
    row: int
    seed: int


class SourceOrder:
    """The infinite, seeded visiting order of one source's rows."""

    def __init__(self, part_sizes: Sequence[int], seed: int, source: int = 0) -> None:
        self.part_sizes = np.asarray(part_sizes, dtype=np.int64)
        self.total = int(self.part_sizes.sum())
        if self.total <= 0:
            raise ValueError("a source needs at least one row")
        self.seed = seed
        self.source = source
        self._pass: tuple[int, np.ndarray, np.ndarray] | None = None
        self._part: tuple[int, int, np.ndarray] | None = None

    def _pass_layout(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        if self._pass is None or self._pass[0] != index:
            order = _rng(self.seed, _SALT_PASS, self.source, index).permutation(len(self.part_sizes))
            starts = np.concatenate([[0], np.cumsum(self.part_sizes[order])])
            self._pass = (index, order, starts)
        return self._pass[1], self._pass[2]

    def _row_permutation(self, index: int, part: int) -> np.ndarray:
        if self._part is None or self._part[:2] != (index, part):
            size = int(self.part_sizes[part])
            self._part = (index, part, _rng(self.seed, _SALT_PART, self.source, index, part).permutation(size))
        return self._part[2]

    def locate(self, position: int) -> tuple[int, int]:
        """(part, row) of the ``position``-th row this source yields."""
        index, offset = divmod(int(position), self.total)
        order, starts = self._pass_layout(index)
        slot = int(np.searchsorted(starts, offset, side="right")) - 1
        part = int(order[slot])
        return part, int(self._row_permutation(index, part)[offset - starts[slot]])


class MixedSampler:
    """Batches of :class:`SampleRef` for one rank, from any global step on."""

    def __init__(self, part_sizes: Sequence[Sequence[int]], weights: Sequence[float], global_batch: int, *,
                 seed: int = 0, rank: int = 0, world_size: int = 1) -> None:
        if len(part_sizes) != len(weights) or not part_sizes:
            raise ValueError("one weight per source, at least one source")
        if global_batch % world_size:
            raise ValueError(f"global batch {global_batch} is not divisible by {world_size} ranks")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world of {world_size}")
        self.orders = [SourceOrder(sizes, seed, i) for i, sizes in enumerate(part_sizes)]
        self.per_epoch = np.asarray([max(1, round(w * o.total)) if w > 0 else 0
                                     for w, o in zip(weights, self.orders)], dtype=np.int64)
        if self.per_epoch.sum() == 0:
            raise ValueError("every source has weight 0")
        self.seed = seed
        self.global_batch = global_batch
        self.local_batch = global_batch // world_size
        self.rank = rank
        self.world_size = world_size
        self.steps_per_epoch = int(self.per_epoch.sum()) // global_batch
        if self.steps_per_epoch == 0:
            raise ValueError(f"an epoch has {int(self.per_epoch.sum())} samples, fewer than one global batch "
                             f"of {global_batch}")

    @property
    def epoch_size(self) -> int:
        return int(self.per_epoch.sum())

    def _assignment(self, epoch: int) -> np.ndarray:
        labels = np.repeat(np.arange(len(self.orders), dtype=np.int32), self.per_epoch)
        _rng(self.seed, _SALT_EPOCH, epoch).shuffle(labels)
        return labels

    def _aug_seed(self, epoch: int, position: int) -> int:
        return int(np.random.SeedSequence([self.seed, _SALT_AUG, epoch, position]).generate_state(1)[0])

    def batches(self, start_step: int = 0, num_steps: int | None = None) -> Iterator[list[SampleRef]]:
        """This rank's batches for global steps ``start_step, start_step + 1, ...``."""
        step = start_step
        end = None if num_steps is None else start_step + num_steps
        epoch, labels, counts = -1, np.empty(0, dtype=np.int32), np.zeros(0, dtype=np.int64)
        while end is None or step < end:
            step_epoch, in_epoch = divmod(step, self.steps_per_epoch)
            first = in_epoch * self.global_batch
            if step_epoch != epoch:
                epoch, labels = step_epoch, self._assignment(step_epoch)
                # Rows each source already gave: all earlier epochs plus this one's prefix.
                counts = self.per_epoch * epoch + np.bincount(labels[:first], minlength=len(self.orders))
            mine = range(first + self.rank * self.local_batch, first + (self.rank + 1) * self.local_batch)
            batch = []
            for position in range(first, first + self.global_batch):
                source = int(labels[position])
                if position in mine:
                    part, row = self.orders[source].locate(int(counts[source]))
                    batch.append(SampleRef(source, part, row, self._aug_seed(epoch, position)))
                counts[source] += 1
            yield batch
            step += 1


class BatchSamplerView:
    """A DataLoader ``batch_sampler``: a fixed window of a :class:`MixedSampler`'s steps."""

    def __init__(self, sampler: MixedSampler, start_step: int, num_steps: int) -> None:
        self.sampler = sampler
        self.start_step = start_step
        self.num_steps = num_steps

    def __iter__(self) -> Iterator[list[SampleRef]]:
        return self.sampler.batches(self.start_step, self.num_steps)

    def __len__(self) -> int:
        return self.num_steps
