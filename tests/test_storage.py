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
