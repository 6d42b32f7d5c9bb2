"""Rows that cannot be stored become error rows instead of failing their whole part.

A value Arrow cannot encode (a lone surrogate in a caption, an integer out of
range, a wrong type from a stage bug) makes the Parquet write of the part raise.
That write happens after the stage's retries, so without this the run, and every
resume of it, would stop at the same part. Only the offending rows are set
aside, each as an ``unencodable_row`` error naming the problem; the rest of the
part is written as usual.
"""

from __future__ import annotations

import pyarrow as pa

from pipeline.contracts import ErrorRow, Row
from pipeline.text_safety import encodable

UNENCODABLE = "unencodable_row"

# What building an Arrow table raises for a bad value (UnicodeEncodeError is a ValueError).
ENCODING_ERRORS = (pa.ArrowException, ValueError, TypeError, OverflowError)


def set_aside_unencodable(rows: list[Row], errors: list[ErrorRow | Row], schema: pa.Schema,
                          stage: str) -> tuple[list[Row], list[ErrorRow]]:
    """The rows that encode under ``schema``; the others as error rows appended to ``errors`` (made storable)."""
    kept: list[Row] = []
    error_rows = [_storable(e, stage) for e in errors]
    for row in rows:
        try:
            pa.Table.from_pylist([row], schema=schema)
        except ENCODING_ERRORS as exc:
            image_id = row.get("image_id") if isinstance(row, dict) else None
            detail = encodable(f"{type(exc).__name__}: {exc}")
            error_rows.append(ErrorRow(image_id if isinstance(image_id, int) else None, stage, UNENCODABLE, detail))
        else:
            kept.append(row)
    return kept, error_rows


def _storable(error: ErrorRow | Row, stage: str) -> ErrorRow:
    """An error row whose texts encode (its detail may quote the bad input)."""
    if not isinstance(error, ErrorRow):
        error = ErrorRow(error.get("image_id"), error.get("stage") or stage, error.get("reason") or "unknown",
                         error.get("detail") or "")
    return ErrorRow(error.image_id, encodable(str(error.stage)), encodable(str(error.reason)),
                    encodable(str(error.detail)))
