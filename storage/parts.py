"""One stage's output on disk: numbered Parquet parts, each committed by a marker.

Layout under ``<run>/<stage>/``::

    _STAGE.json                  stage key + config it was computed with
    part-00000.parquet           rows (the stage's schema)
    errors/part-00000.parquet    error rows (storage.schemas.ERRORS)
    part-00000.done              commit marker, written LAST: key, counts, checksums
    _SUCCESS                     every part committed

A part counts as done only when its marker exists, names the current stage key
and the files' sizes and checksums match it. A crash anywhere before the marker
leaves the part uncommitted and it is recomputed on resume; since stages are
deterministic the rewrite is identical, so nothing is lost or duplicated.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.contracts import ErrorRow, Row
from pipeline.faults import maybe_fault
from storage.atomic import atomic_write, atomic_write_json, remove_stale_temps
from storage.schemas import ERRORS, schema_for


class SchemaMismatch(ValueError):
    """A Parquet file whose schema is not the one its stage promises."""


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_table(path: Path, rows: list[Row], schema: pa.Schema, *, compression: str = "zstd",
                row_group_size: int = 1024, fsync: bool = True) -> None:
    table = pa.Table.from_pylist(rows, schema=schema)
    codec = None if compression == "none" else compression

    def write(tmp: Path) -> None:
        pq.write_table(table, tmp, compression=codec, row_group_size=row_group_size, write_statistics=True)

    atomic_write(path, write, fsync=fsync)


def check_schema(path: Path, schema: pa.Schema) -> None:
    """Refuse a Parquet file unless its schema is exactly ``schema``."""
    found = pq.read_schema(path)
    if not found.remove_metadata().equals(schema.remove_metadata()):
        raise SchemaMismatch(f"{path.name}: schema does not match the expected stage schema\nexpected: {schema}\nfound: {found}")


def read_table(path: Path, schema: pa.Schema) -> pa.Table:
    """Read a Parquet file after checking its schema."""
    check_schema(path, schema)
    return pq.read_table(path, schema=schema)


class StageStore:
    def __init__(self, run_dir: Path, stage: str, key: str, *, fsync: bool = True,
                 compression: str = "zstd", row_group_size: int = 1024) -> None:
        self.stage = stage
        self.key = key
        self.dir = Path(run_dir) / stage
        self.schema = schema_for(stage)
        self.fsync = fsync
        self.compression = compression
        self.row_group_size = row_group_size

    # -- paths -----------------------------------------------------------------
    def part_path(self, part: int) -> Path:
        return self.dir / f"part-{part:05d}.parquet"

    def errors_path(self, part: int) -> Path:
        return self.dir / "errors" / f"part-{part:05d}.parquet"

    def marker_path(self, part: int) -> Path:
        return self.dir / f"part-{part:05d}.done"

    @property
    def stage_file(self) -> Path:
        return self.dir / "_STAGE.json"

    @property
    def success_file(self) -> Path:
        return self.dir / "_SUCCESS"

    @classmethod
    def open_recorded(cls, run_dir: Path, stage: str) -> tuple["StageStore", int] | None:
        """The store a run's stage directory was last prepared for, with its part count (None if never)."""
        try:
            recorded = json.loads((Path(run_dir) / stage / "_STAGE.json").read_text())
            return cls(Path(run_dir), stage, recorded["key"]), int(recorded["n_parts"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    # -- lifecycle -------------------------------------------------------------
    def recorded_key(self) -> str | None:
        try:
            return json.loads(self.stage_file.read_text())["key"]
        except (OSError, ValueError, KeyError):
            return None

    def prepare(self, stage_config: dict[str, Any], n_parts: int) -> bool:
        """Make the directory hold this key's output. Returns True if older output was discarded."""
        discarded = False
        recorded = self.recorded_key()
        if self.dir.exists() and recorded != self.key:
            # Move aside first so a crash mid-delete never leaves a mixed directory.
            trash = self.dir.with_name(f".{self.stage}.discarded-{recorded or 'unknown'}")
            shutil.rmtree(trash, ignore_errors=True)
            self.dir.rename(trash)
            shutil.rmtree(trash, ignore_errors=True)
            discarded = True
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "errors").mkdir(exist_ok=True)
        remove_stale_temps(self.dir)
        remove_stale_temps(self.dir / "errors")
        if recorded != self.key:
            from storage.manifest import redact  # here: storage.manifest imports this module

            # Only the key is read back; the config is for people, so no machine paths or credentials.
            atomic_write_json(self.stage_file, {"stage": self.stage, "key": self.key, "n_parts": n_parts,
                                                "config": redact(stage_config)}, fsync=self.fsync)
        return discarded

    def is_committed(self, part: int, inputs: dict[str, str] | None = None) -> bool:
        """Committed under this key; with ``inputs``, also computed from exactly those input parts."""
        try:
            marker = json.loads(self.marker_path(part).read_text())
        except (OSError, ValueError):
            return False
        if marker.get("key") != self.key:
            return False
        if inputs is not None and marker.get("inputs", {}) != inputs:
            return False
        for name in ("rows_file", "errors_file"):
            info = marker.get(name) or {}
            path = self.dir / info.get("path", "")
            if not path.is_file() or path.stat().st_size != info.get("bytes"):
                return False
        return True

    def committed_parts(self, n_parts: int) -> list[int]:
        return [p for p in range(n_parts) if self.is_committed(p)]

    def write_part(self, part: int, rows: list[Row], errors: list[ErrorRow | Row],
                   inputs: dict[str, str] | None = None) -> dict[str, Any]:
        """Write rows and errors atomically, then the commit marker. Returns the marker.

        ``inputs`` maps each input stage to the digest of the part it was computed
        from; a later change of an input part (recomputed, deleted) un-commits this one.
        """
        self.marker_path(part).unlink(missing_ok=True)
        error_rows = [e.as_row() if isinstance(e, ErrorRow) else e for e in errors]
        write_table(self.part_path(part), rows, self.schema, compression=self.compression,
                    row_group_size=self.row_group_size, fsync=self.fsync)
        maybe_fault("after_rows_written", self.stage, part)
        write_table(self.errors_path(part), error_rows, ERRORS, compression=self.compression, fsync=self.fsync)
        maybe_fault("after_errors_written", self.stage, part)
        marker = {
            "key": self.key,
            "part": part,
            "rows": len(rows),
            "errors": len(error_rows),
            "error_reasons": _count(error_rows, "reason"),
            "rows_file": self._file_info(self.part_path(part)),
            "errors_file": self._file_info(self.errors_path(part)),
            "inputs": inputs or {},
        }
        atomic_write_json(self.marker_path(part), marker, fsync=self.fsync)
        maybe_fault("after_marker_written", self.stage, part)
        return marker

    def digest(self, part: int) -> str:
        """Identity of a committed part's content (rows and errors checksums)."""
        marker = self.marker(part)
        return f"{marker['rows_file']['sha256']}:{marker['errors_file']['sha256']}"

    def uncommit(self, part: int) -> None:
        self.marker_path(part).unlink(missing_ok=True)

    def mark_success(self, n_parts: int) -> None:
        atomic_write_json(self.success_file, {"key": self.key, "n_parts": n_parts}, fsync=self.fsync)

    def is_complete(self, n_parts: int) -> bool:
        try:
            done = json.loads(self.success_file.read_text())
        except (OSError, ValueError):
            return False
        return done.get("key") == self.key and done.get("n_parts") == n_parts and all(
            self.is_committed(p) for p in range(n_parts))

    # -- reading ---------------------------------------------------------------
    def read_rows(self, part: int) -> list[Row]:
        return read_table(self.part_path(part), self.schema).to_pylist()

    def read_errors(self, part: int) -> list[Row]:
        return read_table(self.errors_path(part), ERRORS).to_pylist()

    def marker(self, part: int) -> dict[str, Any]:
        return json.loads(self.marker_path(part).read_text())

    def _file_info(self, path: Path) -> dict[str, Any]:
        return {"path": str(path.relative_to(self.dir)), "bytes": path.stat().st_size, "sha256": sha256_file(path)}


def _count(rows: list[Row], key: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in rows:
        counts[row[key]] = counts.get(row[key], 0) + 1
    return dict(sorted(counts.items()))
