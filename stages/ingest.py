"""Stage 0, ingest: the dataset adapter's rows, split into deterministic parts.

Parts are consecutive runs of images sorted by image id, ``part_size`` each, so
the same dataset and part size always give the same parts, whatever machine or
worker count runs them. Every later stage works part by part on these slices.
"""

from __future__ import annotations

from bisect import bisect_left

from pipeline.contracts import ErrorRow


def partition_ids(image_ids: list[int], part_size: int) -> list[list[int]]:
    """Sorted image ids cut into parts of ``part_size`` (one empty part for an empty dataset)."""
    ordered = sorted(image_ids)
    return [ordered[i : i + part_size] for i in range(0, len(ordered), part_size)] or [[]]


def partition_errors(errors: list[ErrorRow], parts: list[list[int]]) -> list[list[ErrorRow]]:
    """Put each ingest error in the part whose id range covers its image (part 0 if it has no id)."""
    last_ids = [part[-1] for part in parts if part]
    out: list[list[ErrorRow]] = [[] for _ in parts]
    for err in sorted(errors, key=lambda e: (e.image_id is None, e.image_id or 0, e.reason)):
        index = 0 if err.image_id is None else min(bisect_left(last_ids, err.image_id), len(parts) - 1)
        out[index].append(err)
    return out
