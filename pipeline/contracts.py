"""The data contract every stage obeys.

A stage is a plain function over one *part* (a fixed, deterministic slice of the
dataset's images). It receives the rows of its upstream stages for that part as
lists of dicts and returns a :class:`StageOutput`: the rows it produced and the
error rows for inputs it could not handle. Stages never raise for bad input; a
raise means a bug or an infrastructure fault, which the executor retries.

Rows are plain dicts whose keys and types follow the stage's Parquet schema in
:mod:`storage.schemas`. Keeping rows as dicts (not DataFrames) keeps the forward
pass of each stage readable and lets tests build inputs by hand.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Row = dict[str, Any]

# The order data flows through the factory. ``ingest`` is the dataset adapter's
# output (images and their boxes); every later stage reads one or more of these.
STAGE_ORDER: tuple[str, ...] = ("ingest", "caption", "parse", "match", "tag", "shard")


@dataclass
class ErrorRow:
    """One input the stage could not turn into output, with the reason.

    ``reason`` is a short machine-friendly code (``"corrupt_image"``,
    ``"empty_caption"``, ``"parser_exception"`` ...) so errors can be counted by
    kind; ``detail`` is the human-readable message.
    """

    image_id: int | None
    stage: str
    reason: str
    detail: str = ""

    def as_row(self) -> Row:
        return {
            "image_id": self.image_id,
            "stage": self.stage,
            "reason": self.reason,
            "detail": self.detail[:2000],
        }


@dataclass
class StageOutput:
    rows: list[Row] = field(default_factory=list)
    errors: list[ErrorRow] = field(default_factory=list)

    def extend(self, other: "StageOutput") -> None:
        self.rows.extend(other.rows)
        self.errors.extend(other.errors)


class StageError(RuntimeError):
    """A failure of the stage itself (not of one input): the part is retried."""
