"""One stage's output on disk: a plain Parquet dataset of committed parts.

Layout under ``<run>/<stage>/``::

    part-00000.parquet           rows (the stage's schema); present ONLY once committed
    _markers/part-00000.json     commit marker: key, counts, sizes and sha256 of both files, input digests
    _errors/part-00000.parquet   error rows (storage.schemas.ERRORS)
    _staging/part-00000.parquet  rows written but not yet published (only ever seen after a crash)
    _STAGE.json                  stage key + config it was computed with
    _SUCCESS                     every part committed
    .<name>.<random>.tmp         a temp file of an atomic write in progress

Standard readers skip names starting with ``_`` or ``.`` (pyarrow's and pandas'
dataset discovery) and ``read_parquet('<stage>/*.parquet')`` (DuckDB, Polars)
matches only the top-level ``part-*.parquet`` files, so what every reader sees is
exactly the committed rows with the stage schema.

Commit protocol of one part (``write_part``; every file write is temp + fsync + rename):

1. *uncommit*: delete the visible ``part-N.parquet``, then its marker;
2. write the rows to ``_staging/part-N.parquet``;
3. write the error rows to ``_errors/part-N.parquet``;
4. write the marker, recording size and sha256 of the staged rows and the errors:
   this is the commit point;
5. *publish*: rename ``_staging/part-N.parquet`` to ``part-N.parquet``.

Hence a visible part always has its marker (1 removes it before the marker,
5 adds it after). A part is committed when its marker names the current stage
key and the visible and error files have the sizes it records. A crash leaves
one of three states, which ``prepare`` (run under the run lock) settles the same
way every time: before 4 the part is not committed and its staged file is
deleted (rolled back, recomputed on resume); between 4 and 5 the staged file
matches the marker's checksum and is published (rolled forward); a visible part
without a marker (written by hand, or by an old layout) is deleted. Stages
are deterministic, so a recomputed part is byte-identical to the lost one.

Run folders written before this layout (``part-N.done`` markers next to the
parts, ``errors/``) are migrated in place by ``storage.layout_migration``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.contracts import ErrorRow, Row
from pipeline.faults import maybe_fault
from storage.atomic import atomic_write, atomic_write_json, fsync_dir, remove_stale_temps
from storage.schemas import ERRORS, is_legacy_schema, schema_for, upgrade_table


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
                row_group_size: int = 1024, fsync: bool = True, fault_label: str | None = None) -> None:
    table = pa.Table.from_pylist(rows, schema=schema)
    codec = None if compression == "none" else compression

    def write(tmp: Path) -> None:
        pq.write_table(table, tmp, compression=codec, row_group_size=row_group_size, write_statistics=True)

    atomic_write(path, write, fsync=fsync, fault_label=fault_label)


def check_schema(path: Path, schema: pa.Schema) -> None:
    """Refuse a Parquet file unless its schema is ``schema`` or an older version readers still accept."""
    found = pq.read_schema(path)
    if not found.remove_metadata().equals(schema.remove_metadata()) and not is_legacy_schema(schema, found):
        raise SchemaMismatch(f"{path.name}: schema does not match the expected stage schema\nexpected: {schema}\nfound: {found}")


def read_table(path: Path, schema: pa.Schema) -> pa.Table:
    """Read a Parquet file after checking its schema; an older accepted version is re-typed to ``schema``."""
    check_schema(path, schema)
    if is_legacy_schema(schema, pq.read_schema(path)):
        return upgrade_table(pq.read_table(path), schema)
    return pq.read_table(path, schema=schema)


PART_GLOB = "part-*.parquet"
MARKERS_DIR = "_markers"
ERRORS_DIR = "_errors"
STAGING_DIR = "_staging"


def part_name(part: int) -> str:
    return f"part-{part:05d}.parquet"


def _part_number(path: Path) -> int | None:
    """``part-00012.parquet`` / ``part-00012.json`` -> 12; anything else -> None."""
    stem = path.name.split(".", 1)[0]
    if not stem.startswith("part-") or not stem[5:].isdigit():
        return None
    return int(stem[5:])


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
        """The visible rows file: exists only while the part is committed."""
        return self.dir / part_name(part)

    def staged_path(self, part: int) -> Path:
        return self.dir / STAGING_DIR / part_name(part)

    def errors_path(self, part: int) -> Path:
        return self.dir / ERRORS_DIR / part_name(part)

    def marker_path(self, part: int) -> Path:
        return self.dir / MARKERS_DIR / f"part-{part:05d}.json"

    @property
    def stage_file(self) -> Path:
        return self.dir / "_STAGE.json"

    @property
    def success_file(self) -> Path:
        return self.dir / "_SUCCESS"

    def _label(self, path: Path) -> str:
        """Fault-injection name of a write: ``<stage>/<path in the stage dir>``, staged rows under their final name."""
        if path.parent.name == STAGING_DIR:
            path = self.dir / path.name
        return f"{self.stage}/{path.relative_to(self.dir)}"

    @classmethod
    def open_recorded(cls, run_dir: Path, stage: str) -> tuple["StageStore", int] | None:
        """The store a run's stage directory was last prepared for, with its part count (None if never).

        Readers come through here; a folder of the old layout is refused with what to do
        (readers never rewrite a run: only a writer holding the run lock migrates it).
        """
        from storage.layout_migration import refuse_old_layout  # here: it imports this module

        refuse_old_layout(Path(run_dir) / stage)
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
        """Make the directory hold this key's output. Returns True if older output was discarded.

        The caller holds the run lock: this is where an old-layout folder is migrated
        and where a commit that a crash interrupted is settled (see the module docstring).
        """
        from storage.layout_migration import migrate_stage_dir  # here: it imports this module

        migrate_stage_dir(self.dir, fsync=self.fsync)
        discarded = False
        recorded = self.recorded_key()
        if self.dir.exists() and recorded != self.key:
            # Move aside first so a crash mid-delete never leaves a mixed directory.
            trash = self.dir.with_name(f".{self.stage}.discarded-{recorded or 'unknown'}")
            shutil.rmtree(trash, ignore_errors=True)
            self.dir.rename(trash)
            shutil.rmtree(trash, ignore_errors=True)
            discarded = True
        for sub in (MARKERS_DIR, ERRORS_DIR, STAGING_DIR):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
            remove_stale_temps(self.dir / sub)
        remove_stale_temps(self.dir)
        self.recover()
        if recorded != self.key:
            from storage.manifest import redact  # here: storage.manifest imports this module

            # Only the key is read back; the config is for people, so no machine paths or credentials.
            atomic_write_json(self.stage_file, {"stage": self.stage, "key": self.key, "n_parts": n_parts,
                                                "config": redact(stage_config)}, fsync=self.fsync)
        return discarded

    def recover(self) -> dict[str, int]:
        """Settle commits a crash interrupted: publish staged parts whose marker is written, drop the rest.

        Returns how many parts were rolled forward / back and how many stray visible
        files (no valid marker) were removed. Needs the run lock.
        """
        counts = {"rolled_forward": 0, "rolled_back": 0, "stray_removed": 0}
        staging = self.dir / STAGING_DIR
        for staged in sorted(staging.glob(PART_GLOB)) if staging.is_dir() else []:
            part = _part_number(staged)
            marker = self._read_marker(part) if part is not None else None
            if marker is not None and _matches(staged, marker.get("rows_file") or {}, checksum=True):
                os.replace(staged, self.part_path(part))
                counts["rolled_forward"] += 1
            else:
                staged.unlink(missing_ok=True)
                counts["rolled_back"] += 1
        # One listing, not a marker read per part: markers are written only by this protocol and a
        # new key discards the folder, so a visible part with a marker file is one that was committed
        # (one damaged since then fails is_committed and is recomputed, which hides it first).
        markers = self.dir / MARKERS_DIR
        marked = {p.name.split(".", 1)[0] for p in markers.glob("part-*.json")} if markers.is_dir() else set()
        for visible in sorted(self.dir.glob(PART_GLOB)) if self.dir.is_dir() else []:
            if _part_number(visible) is None or visible.name.split(".", 1)[0] not in marked:
                visible.unlink(missing_ok=True)
                counts["stray_removed"] += 1
        if any(counts.values()) and self.fsync:
            fsync_dir(self.dir)
        return counts

    def _read_marker(self, part: int) -> dict[str, Any] | None:
        try:
            marker = json.loads(self.marker_path(part).read_text())
        except (OSError, ValueError):
            return None
        return marker if isinstance(marker, dict) and marker.get("key") == self.key else None

    def is_committed(self, part: int, inputs: dict[str, str] | None = None) -> bool:
        """Committed under this key; with ``inputs``, also computed from exactly those input parts."""
        marker = self._read_marker(part)
        if marker is None:
            return False
        if inputs is not None and marker.get("inputs", {}) != inputs:
            return False
        return _matches(self.part_path(part), marker.get("rows_file") or {}) and \
            _matches(self.errors_path(part), marker.get("errors_file") or {})

    def committed_parts(self, n_parts: int) -> list[int]:
        return [p for p in range(n_parts) if self.is_committed(p)]

    def write_part(self, part: int, rows: list[Row], errors: list[ErrorRow | Row],
                   inputs: dict[str, str] | None = None) -> dict[str, Any]:
        """Write rows and errors, commit them with the marker, then publish the rows. Returns the marker.

        ``inputs`` maps each input stage to the digest of the part it was computed
        from; a later change of an input part (recomputed, deleted) un-commits this one.
        """
        self.uncommit(part)
        error_rows = [e.as_row() if isinstance(e, ErrorRow) else e for e in errors]
        staged = self.staged_path(part)
        write_table(staged, rows, self.schema, compression=self.compression,
                    row_group_size=self.row_group_size, fsync=self.fsync, fault_label=self._label(staged))
        maybe_fault("after_rows_written", self.stage, part)
        errors_path = self.errors_path(part)
        write_table(errors_path, error_rows, ERRORS, compression=self.compression, fsync=self.fsync,
                    fault_label=self._label(errors_path))
        maybe_fault("after_errors_written", self.stage, part)
        marker = {
            "key": self.key,
            "part": part,
            "rows": len(rows),
            "errors": len(error_rows),
            "error_reasons": _count(error_rows, "reason"),
            "rows_file": self._file_info(staged, self.part_path(part)),
            "errors_file": self._file_info(errors_path, errors_path),
            "inputs": inputs or {},
        }
        self.commit(part, marker)
        return marker

    def commit(self, part: int, marker: dict[str, Any]) -> None:
        """Steps 4 and 5 of the protocol: the marker (commit point), then the staged rows made visible."""
        marker_path = self.marker_path(part)
        atomic_write_json(marker_path, marker, fsync=self.fsync, fault_label=self._label(marker_path))
        maybe_fault("after_marker_written", self.stage, part)
        # No directory fsync: should a power cut lose this rename, the staged file (fsynced, and
        # checked against the marker's sha256) is still in _staging and ``recover`` publishes it.
        os.replace(self.staged_path(part), self.part_path(part))

    def digest(self, part: int) -> str:
        """Identity of a committed part's content (rows and errors checksums)."""
        marker = self.marker(part)
        return f"{marker['rows_file']['sha256']}:{marker['errors_file']['sha256']}"

    def uncommit(self, part: int) -> None:
        """Hide the rows first, then drop the marker: a visible part never lacks its marker."""
        self.part_path(part).unlink(missing_ok=True)
        self.marker_path(part).unlink(missing_ok=True)

    def mark_success(self, n_parts: int) -> None:
        atomic_write_json(self.success_file, {"key": self.key, "n_parts": n_parts}, fsync=self.fsync,
                          fault_label=self._label(self.success_file))

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

    def _file_info(self, written: Path, final: Path) -> dict[str, Any]:
        """Size and checksum of ``written``, recorded under the path it has once published."""
        return {"path": str(final.relative_to(self.dir)), "bytes": written.stat().st_size,
                "sha256": sha256_file(written)}


def _matches(path: Path, info: dict[str, Any], *, checksum: bool = False) -> bool:
    """``path`` is the file ``info`` (a marker's file entry) describes: by size, and by sha256 when asked."""
    try:
        if path.stat().st_size != info.get("bytes"):
            return False
    except OSError:
        return False
    return not checksum or sha256_file(path) == info.get("sha256")


def _count(rows: list[Row], key: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in rows:
        counts[row[key]] = counts.get(row[key], 0) + 1
    return dict(sorted(counts.items()))
