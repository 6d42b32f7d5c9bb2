"""How big the units of a large run are: images per part, and parts per orchestrator task.

Measured fixed costs (bench/scale.py) set both. A part costs a handful of small
files, a few marker reads while planning and ~0.1 s of commit work per stage,
whatever its size; a Prefect task run costs a few database rows and tens of
milliseconds of API calls. At the old fixed 64 images per part, Objects365
(1.7 M images) would be 26,600 parts x 5 stages: 133,000 Prefect task runs and
~400,000 files. So:

* ``part_size`` left unset grows with the dataset: 64 images (the old default, so
  runs up to 32 k images are cut exactly as before) up to 4,096, doubling until
  the run has at most ``TARGET_MAX_PARTS`` parts (COCO train: 256 images a part,
  Objects365: 4,096), and never so large that a worker gets fewer than
  ``PARTS_PER_WORKER`` parts to balance load with. Larger parts cost only a longer
  recompute of the part a crash interrupted.
* the Prefect flow runs one task per *group* of consecutive parts; Ray schedules
  each part's stages inside the group, so parts still stream through stages.
"""

from __future__ import annotations

import math

DEFAULT_PART_SIZE = 64
MAX_AUTO_PART_SIZE = 4096
TARGET_MAX_PARTS = 512
PARTS_PER_WORKER = 4
# A group keeps every worker busy (several parts each) and the run has at most this many groups.
TARGET_MAX_GROUPS = 256


def auto_part_size(n_images: int, workers: int) -> int:
    """Images per part for a dataset of ``n_images`` run on ``workers`` workers (a power of two times 64)."""
    size = DEFAULT_PART_SIZE
    while size < MAX_AUTO_PART_SIZE and math.ceil(n_images / size) > TARGET_MAX_PARTS:
        size *= 2
    # Load balance wins over the part-count target, but never below the old default.
    while size > DEFAULT_PART_SIZE and n_images / size < PARTS_PER_WORKER * workers:
        size //= 2
    return size


def group_size(n_parts: int, workers: int) -> int:
    """Parts per orchestrator task: enough to keep ``workers`` busy, few enough tasks for the Prefect API."""
    return max(PARTS_PER_WORKER * workers, math.ceil(n_parts / TARGET_MAX_GROUPS), 1)


def part_groups(parts: list[int], workers: int) -> list[list[int]]:
    """``parts`` (sorted) cut into consecutive groups of ``group_size``."""
    size = group_size(len(parts), workers)
    return [parts[i : i + size] for i in range(0, len(parts), size)]
