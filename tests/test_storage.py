from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.contracts import ErrorRow
from storage.atomic import atomic_write_bytes
from storage.parts import SchemaMismatch, StageStore, read_table
from storage.schemas import CAPTION


def caption_rows(n: int) -> list[dict]:
    return [{"image_id": i, "caption_index": 0, "caption": f"a dog {i}", "captioner": "oracle",
             "model_id": "captions.json", "decoding": "{}", "seed": 0} for i in range(n)]


def test_part_commit_roundtrip(tmp_path):
    store = StageStore(tmp_path, "caption", "k1")
    store.prepare({"x": 1}, n_parts=2)
    assert not store.is_committed(0)
    marker = store.write_part(0, caption_rows(3), [ErrorRow(7, "caption", "corrupt_image", "bad")])
    assert store.is_committed(0) and not store.is_committed(1)
    assert marker["rows"] == 3 and marker["errors"] == 1 and marker["error_reasons"] == {"corrupt_image": 1}
    assert store.read_rows(0) == caption_rows(3)
    assert store.read_errors(0)[0]["reason"] == "corrupt_image"
    assert not store.is_complete(2)


def test_rewrite_is_byte_identical(tmp_path):
    a = StageStore(tmp_path / "a", "caption", "k")
    b = StageStore(tmp_path / "b", "caption", "k")
    for store in (a, b):
        store.prepare({}, 1)
        store.write_part(0, caption_rows(50), [])
    assert a.part_path(0).read_bytes() == b.part_path(0).read_bytes()


def test_truncated_part_is_not_committed(tmp_path):
    store = StageStore(tmp_path, "caption", "k")
    store.prepare({}, 1)
    store.write_part(0, caption_rows(5), [])
    data = store.part_path(0).read_bytes()
    store.part_path(0).write_bytes(data[: len(data) // 2])
    assert not store.is_committed(0)


def test_marker_of_other_key_is_not_committed(tmp_path):
    store = StageStore(tmp_path, "caption", "old")
    store.prepare({}, 1)
    store.write_part(0, caption_rows(2), [])
    new = StageStore(tmp_path, "caption", "new")
    assert not new.is_committed(0)
    assert new.prepare({}, 1) is True  # old output discarded
    assert not new.part_path(0).exists()
    assert json.loads(new.stage_file.read_text())["key"] == "new"


def test_prepare_removes_stale_temp_files(tmp_path):
    store = StageStore(tmp_path, "caption", "k")
    store.prepare({}, 1)
    (store.dir / ".part-00000.parquet.abc.tmp").write_bytes(b"partial")
    store.prepare({}, 1)
    assert not list(store.dir.glob(".*.tmp"))


def test_schema_mismatch_refused(tmp_path):
    path = tmp_path / "x.parquet"
    pq.write_table(pa.table({"image_id": [1], "caption": ["x"]}), path)
    with pytest.raises(SchemaMismatch):
        read_table(path, CAPTION)


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    target = tmp_path / "f.json"
    atomic_write_bytes(target, b"old")

    from storage.atomic import atomic_write

    def boom(tmp):
        tmp.write_bytes(b"half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        atomic_write(target, boom)
    assert target.read_bytes() == b"old"
    assert not list(tmp_path.glob(".*.tmp"))


# -- the stage folder as a Parquet dataset (storage.parts' commit protocol) --------------------------------------------

def _committed_store(tmp_path, n_parts: int = 3) -> StageStore:
    store = StageStore(tmp_path, "caption", "k")
    store.prepare({}, n_parts)
    for part in range(n_parts):
        store.write_part(part, caption_rows(2 + part), [ErrorRow(100 + part, "caption", "corrupt_image", "bad")])
    return store


def test_stage_dir_shows_only_committed_parts_to_dataset_readers(tmp_path):
    import duckdb
    import pandas as pd
    import pyarrow.dataset as ds

    store = _committed_store(tmp_path)
    # A part caught mid-commit: rows staged, no marker yet. It must stay invisible.
    store.uncommit(2)
    pq.write_table(pa.Table.from_pylist(caption_rows(9), schema=CAPTION), store.staged_path(2))
    expected = sorted(caption_rows(2) + caption_rows(3), key=lambda r: (r["image_id"], r["caption"]))

    table = ds.dataset(store.dir, format="parquet").to_table()
    assert table.schema.remove_metadata().equals(CAPTION)
    assert sorted(table.to_pylist(), key=lambda r: (r["image_id"], r["caption"])) == expected
    frame = pd.read_parquet(store.dir)
    assert list(frame.columns) == CAPTION.names and len(frame) == len(expected)
    rows = duckdb.sql(f"SELECT * FROM read_parquet('{store.dir}/*.parquet')").fetchall()
    assert len(rows) == len(expected)
    assert sorted(p.name for p in store.dir.iterdir() if not p.name.startswith(("_", "."))) == \
        ["part-00000.parquet", "part-00001.parquet"]


def test_prepare_rolls_a_commit_forward_once_its_marker_is_written(tmp_path):
    store = _committed_store(tmp_path, 1)
    published = store.part_path(0).read_bytes()
    # Killed between the marker (commit point) and the publishing rename.
    store.part_path(0).rename(store.staged_path(0))
    assert not store.is_committed(0)
    store.prepare({}, 1)
    assert store.is_committed(0) and store.part_path(0).read_bytes() == published
    assert not store.staged_path(0).exists()


def test_prepare_rolls_back_staged_rows_without_marker_and_strays(tmp_path):
    store = _committed_store(tmp_path, 2)
    store.uncommit(1)
    pq.write_table(pa.Table.from_pylist(caption_rows(4), schema=CAPTION), store.staged_path(1))
    # A visible file no marker commits (hand-made, or a foreign writer): not part of the dataset.
    pq.write_table(pa.Table.from_pylist(caption_rows(1), schema=CAPTION), store.part_path(5))
    counts = store.recover()
    assert counts == {"rolled_forward": 0, "rolled_back": 1, "stray_removed": 1}
    assert not store.staged_path(1).exists() and not store.part_path(5).exists()
    assert store.committed_parts(2) == [0]


def test_staged_rows_that_differ_from_the_marker_are_not_published(tmp_path):
    store = _committed_store(tmp_path, 1)
    store.part_path(0).rename(store.staged_path(0))
    data = store.staged_path(0).read_bytes()
    store.staged_path(0).write_bytes(data[:-1] + bytes([data[-1] ^ 1]))  # same size, other content
    assert store.recover()["rolled_back"] == 1
    assert not store.part_path(0).exists() and not store.is_committed(0)


def _to_old_layout(store: StageStore, n_parts: int) -> None:
    """Rewrite a stage folder as relfactory wrote it before: part-N.done next to the parts, errors/."""
    (store.dir / "errors").mkdir()
    for part in range(n_parts):
        marker = store.marker(part)
        store.errors_path(part).rename(store.dir / "errors" / store.errors_path(part).name)
        marker["errors_file"]["path"] = f"errors/{store.errors_path(part).name}"
        (store.dir / f"part-{part:05d}.done").write_text(json.dumps(marker))
        store.marker_path(part).unlink()
    for sub in ("_markers", "_errors", "_staging"):
        (store.dir / sub).rmdir()


def test_old_layout_is_refused_by_readers_and_migrated_in_place(tmp_path):
    from storage.layout_migration import OldLayoutError, migrate_run

    store = _committed_store(tmp_path / "run", 2)
    digests = [store.digest(p) for p in range(2)]
    _to_old_layout(store, 2)
    # An uncommitted part of the old layout: rows and errors written, marker never.
    pq.write_table(pa.Table.from_pylist(caption_rows(7), schema=CAPTION), store.part_path(2))
    with pytest.raises(OldLayoutError, match="relfactory migrate"):
        StageStore.open_recorded(tmp_path / "run", "caption")

    assert migrate_run(tmp_path / "run") == {"caption": 2}
    opened = StageStore.open_recorded(tmp_path / "run", "caption")
    assert opened is not None
    migrated, _ = opened
    assert migrated.committed_parts(3) == [0, 1]
    assert [migrated.digest(p) for p in range(2)] == digests  # downstream input digests still hold
    assert not (store.dir / "errors").exists() and not list(store.dir.glob("*.done"))
    assert not store.part_path(2).exists()
    assert migrated.read_errors(1)[0]["image_id"] == 101
    assert migrate_run(tmp_path / "run") == {}  # nothing left to do


def test_a_writer_migrates_an_old_folder_on_prepare(tmp_path):
    store = _committed_store(tmp_path, 2)
    _to_old_layout(store, 2)
    store.prepare({}, 2)
    assert store.committed_parts(2) == [0, 1]


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_files_honour_the_umask(tmp_path, umask, mode):
    import os

    previous = os.umask(umask)
    try:
        store = _committed_store(tmp_path, 1)
    finally:
        os.umask(previous)
    for path in (store.part_path(0), store.errors_path(0), store.marker_path(0), store.stage_file):
        assert path.stat().st_mode & 0o777 == mode, path
