"""Read a finished (or partial) run back: committed rows and errors per stage, one image's rows, its photo.

Every inspection tool (``inspect``, ``show``, ``report``, ``diff``, the dataset card)
reads through here, and here reads only what the part store says is committed
(``StageStore.open_recorded`` + ``committed_parts``), so half-written or stale
files are never shown and the on-disk layout stays the store's business.

A run may have been made on another machine: the manifest holds relative or
shortened paths, so the image folder is looked up among the candidates below and
can always be given explicitly (``--images``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.contracts import STAGE_ORDER
from storage.parts import StageStore, check_schema
from storage.schemas import ERRORS, schema_for


class InspectionError(ValueError):
    """A request the run cannot answer (a stage it lacks, nothing to show); printed as one line."""

    user_facing = True


class RunNotFound(FileNotFoundError):
    """The named run has no folder or no manifest."""


class ImageNotFound(FileNotFoundError):
    """An image id the run does not hold, or whose photo cannot be located."""


def resolve_run_dir(run: str | Path, output: str | Path = "runs") -> Path:
    """``run`` as a run folder path if it is one, else the run of that name under ``output``."""
    direct = Path(run)
    if (direct / "manifest.json").is_file() or (direct / "ingest").is_dir():
        return direct
    named = Path(output) / str(run)
    if named.is_dir():
        return named
    raise RunNotFound(f"no run {str(run)!r}: neither a run folder nor a run under {output}")


class RunReader:
    """Committed content of one run folder."""

    def __init__(self, run_dir: str | Path, images: str | Path | None = None) -> None:
        self.run_dir = Path(run_dir)
        if not self.run_dir.is_dir():
            raise RunNotFound(f"no such run folder: {self.run_dir}")
        self.images = Path(images) if images is not None else None
        # Results derived from the whole run (e.g. per-image traces), computed once per reader.
        self.memo: dict[str, Any] = {}

    @cached_property
    def manifest(self) -> dict[str, Any]:
        try:
            return json.loads((self.run_dir / "manifest.json").read_text())
        except (OSError, ValueError):
            return {}

    @property
    def name(self) -> str:
        return self.manifest.get("run") or self.run_dir.name

    # -- stage files -------------------------------------------------------------
    def _store(self, stage: str) -> tuple[StageStore, int] | None:
        return StageStore.open_recorded(self.run_dir, stage)

    def has_stage(self, stage: str) -> bool:
        return self._store(stage) is not None

    def stages(self) -> list[str]:
        return [s for s in STAGE_ORDER if self.has_stage(s)]

    def committed_parts(self, stage: str) -> list[int]:
        opened = self._store(stage)
        return opened[0].committed_parts(opened[1]) if opened else []

    def part_files(self, stage: str, errors: bool = False) -> list[tuple[int, Path]]:
        opened = self._store(stage)
        if opened is None:
            return []
        store, n_parts = opened
        return [(p, store.errors_path(p) if errors else store.part_path(p)) for p in store.committed_parts(n_parts)]

    def rows(self, stage: str, columns: list[str] | None = None,
             image_ids: set[int] | None = None) -> Iterator[dict[str, Any]]:
        """Rows of every committed part, streamed in batches (optionally only some images)."""
        yield from self._iter(self.part_files(stage), schema_for(stage), columns, image_ids)

    def errors(self, stage: str, image_ids: set[int] | None = None) -> Iterator[dict[str, Any]]:
        yield from self._iter(self.part_files(stage, errors=True), ERRORS, None, image_ids)

    @staticmethod
    def _iter(files: list[tuple[int, Path]], schema: pa.Schema, columns: list[str] | None,
              image_ids: set[int] | None) -> Iterator[dict[str, Any]]:
        if image_ids is not None and not image_ids:
            return
        for _, path in files:
            check_schema(path, schema)
            if image_ids is not None:
                # Predicate push-down: a lookup of one image reads only matching row groups.
                table = pq.read_table(path, columns=columns, filters=[("image_id", "in", sorted(image_ids))])
                yield from table.to_pylist()
                continue
            for batch in pq.ParquetFile(path).iter_batches(batch_size=512, columns=columns):
                yield from batch.to_pylist()

    def image_rows(self, stage: str, image_id: int) -> list[dict[str, Any]]:
        return list(self.rows(stage, image_ids={image_id}))

    def image_errors(self, stage: str, image_id: int) -> list[dict[str, Any]]:
        return list(self.errors(stage, image_ids={image_id}))

    # -- images ----------------------------------------------------------------
    def ingest_row(self, image_id: int) -> dict[str, Any]:
        rows = self.image_rows("ingest", image_id)
        if not rows:
            raise ImageNotFound(f"run {self.name} has no image {image_id}")
        return rows[0]

    def image_roots(self) -> list[Path]:
        """Folders the photos may be under, most explicit first."""
        roots: list[Path] = []
        if self.images is not None:
            roots.append(self.images)
        dataset = (self.manifest.get("config") or {}).get("dataset") or {}
        if dataset.get("kind") == "demo":
            from pipeline.config import DatasetConfig
            from pipeline.datasets import image_root

            roots.append(image_root(DatasetConfig(kind="demo")))  # the photos ship with scikit-image
        recorded = dataset.get("images")
        if isinstance(recorded, str) and not recorded.startswith("..."):
            # Relative to where the run was made, which is usually the run folder's grandparent.
            roots += [Path(recorded), self.run_dir.parent.parent / recorded, self.run_dir / recorded]
        return roots

    def image_path(self, image_id: int) -> Path:
        from pipeline.images import BadImage, resolve_image_path

        file_name = self.ingest_row(image_id)["file_name"]
        for root in self.image_roots():
            try:
                path = resolve_image_path(root, file_name)
            except BadImage:
                continue
            if path.is_file():
                return path
        raise ImageNotFound(f"photo {file_name} of image {image_id} not found"
                            + (f" under {self.images}" if self.images else "; pass --images DIR (the image folder)"))
