"""Stage 0, ingest: the dataset adapter's rows, split into deterministic parts.

Parts are consecutive runs of images sorted by image id, ``part_size`` each, so
the same dataset and part size always give the same parts, whatever machine or
worker count runs them. Every later stage works part by part on these slices.
"""

from __future__ import annotations

from pipeline.contracts import ErrorRow, Row


def partition(rows: list[Row], part_size: int) -> list[list[Row]]:
    ordered = sorted(rows, key=lambda r: r["image_id"])
    parts = [ordered[i : i + part_size] for i in range(0, len(ordered), part_size)]
    return parts or [[]]


def partition_errors(errors: list[ErrorRow], parts: list[list[Row]]) -> list[list[ErrorRow]]:
    """Put each ingest error in the part whose id range covers its image (part 0 if none)."""
    bounds = [part[-1]["image_id"] if part else None for part in parts]
    out: list[list[ErrorRow]] = [[] for _ in parts]
    for err in sorted(errors, key=lambda e: (e.image_id is None, e.image_id or 0, e.reason)):
        index = 0
        if err.image_id is not None:
            index = next((i for i, hi in enumerate(bounds) if hi is not None and err.image_id <= hi), len(parts) - 1)
        out[index].append(err)
    return out
