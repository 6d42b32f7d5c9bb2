"""Nothing untrusted is unpickled, and Parquet inputs are schema-checked before use.

A checkpoint or a part file is data someone handed us: loading it must never run
code from it, and a file whose columns are not the stage's schema must be refused
by name rather than half-understood.
"""

from __future__ import annotations

import ast
import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.runner import execute_part, plan_run, store_for
from storage.parts import SchemaMismatch
from storage.schemas import INGEST
from tests.reliability.helpers import PROJECT_ROOT, demo_cfg

SOURCE_DIRS = ("pipeline", "stages", "model", "storage", "flows", "bench")

PICKLE_MODULES = {"pickle", "cPickle", "dill", "cloudpickle", "shelve", "marshal"}
# Calls that deserialise executable objects (pickle and friends) or evaluate text as code.
FORBIDDEN_CALLS = {
    ("pickle", "load"), ("pickle", "loads"), ("pickle", "Unpickler"), ("cPickle", "load"), ("cPickle", "loads"),
    ("dill", "load"), ("dill", "loads"), ("cloudpickle", "load"), ("cloudpickle", "loads"), ("joblib", "load"),
    ("pd", "read_pickle"), ("pandas", "read_pickle"), ("yaml", "unsafe_load"), ("yaml", "full_load"),
    ("marshal", "loads"), ("shelve", "open"), ("jit", "load"),
}


def _python_files() -> list[Path]:
    return [p for d in SOURCE_DIRS for p in sorted((PROJECT_ROOT / d).rglob("*.py"))]


def _call_name(node: ast.Call) -> tuple[str, str] | None:
    func = node.func
    if isinstance(func, ast.Attribute):
        owner = func.value
        base = owner.attr if isinstance(owner, ast.Attribute) else owner.id if isinstance(owner, ast.Name) else "?"
        return base, func.attr
    if isinstance(func, ast.Name):
        return "", func.id
    return None


def _keyword(node: ast.Call, name: str) -> object:
    for kw in node.keywords:
        if kw.arg == name:
            return kw.value.value if isinstance(kw.value, ast.Constant) else kw.value
    return None


def _violations(path: Path, root: Path = PROJECT_ROOT) -> list[str]:
    found = []
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [f"imports {a.name}" for a in node.names if a.name.split(".")[0] in PICKLE_MODULES]
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in PICKLE_MODULES:
            found.append(f"imports from {node.module}")
        if not isinstance(node, ast.Call):
            continue
        name = _call_name(node)
        if name is None:
            continue
        where = f"line {node.lineno}"
        if name == ("torch", "load") and _keyword(node, "weights_only") is not True:
            found.append(f"{where}: torch.load without weights_only=True")
        elif name in FORBIDDEN_CALLS:
            found.append(f"{where}: {'.'.join(name)}")
        elif name[1] == "load" and name[0] in {"np", "numpy"} and _keyword(node, "allow_pickle") is True:
            found.append(f"{where}: numpy.load(allow_pickle=True)")
        elif name == ("yaml", "load") and not str(ast.unparse(node)).count("SafeLoader"):
            found.append(f"{where}: yaml.load without SafeLoader")
        elif name in {("", "eval"), ("", "exec")}:
            found.append(f"{where}: {name[1]}()")
    return [f"{path.relative_to(root)} {v}" for v in found]


def test_no_unsafe_deserialisation_anywhere_in_the_factory():
    files = _python_files()
    assert len(files) > 30  # the scan really covers the packages
    violations = [v for f in files for v in _violations(f)]
    assert not violations, "\n".join(violations)


def test_the_scan_itself_catches_what_it_should(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import pickle\nimport torch, yaml\n"
                   "torch.load(p)\ntorch.load(p, weights_only=False)\npickle.loads(b)\nyaml.load(t)\n"
                   "eval(s)\nnp.load(f, allow_pickle=True)\ntorch.load(p, weights_only=True)\nmodel.eval()\n")
    text = "\n".join(_violations(bad, root=tmp_path))
    for expected in ("imports pickle", "line 3: torch.load", "line 4: torch.load", "pickle.loads", "yaml.load",
                     "eval()", "allow_pickle"):
        assert expected in text
    assert "line 9" not in text and "line 10" not in text


class _Payload:
    """Unpickling this would create a directory: proof that code from the file ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (str(self.marker),)


@pytest.fixture()
def booby_trapped_checkpoint(tmp_path: Path) -> tuple[Path, Path]:
    torch = pytest.importorskip("torch")
    marker = tmp_path / "code-ran"
    path = tmp_path / "rtagger.pth"
    torch.save({"format": "relfactory-rlipv2", "format_version": 1, "model": {"w": torch.zeros(2)},
                "config": _Payload(marker)}, path)
    return path, marker


def test_checkpoint_loaders_refuse_pickled_code(booby_trapped_checkpoint):
    from model.checkpoint import CheckpointError, load_checkpoint, read_checkpoint
    from model.convert_official import read_official_checkpoint

    path, marker = booby_trapped_checkpoint
    with pytest.raises(CheckpointError, match="weights-only"):
        read_checkpoint(path)
    with pytest.raises(CheckpointError):
        load_checkpoint(path)
    with pytest.raises(Exception, match="(?i)weights_only|unsupported|global"):
        read_official_checkpoint(path)
    assert not marker.exists(), "loading a checkpoint executed code stored in it"


# -- Parquet inputs --------------------------------------------------------------------------------------------------

def _forge_committed(store, part: int, table: pa.Table) -> None:
    """Replace a committed part with ``table`` and fix its marker, as a foreign writer would."""
    pq.write_table(table, store.part_path(part))
    marker = json.loads(store.marker_path(part).read_text())
    marker["rows_file"]["bytes"] = store.part_path(part).stat().st_size
    store.marker_path(part).write_text(json.dumps(marker))
    assert store.is_committed(part)


@pytest.mark.parametrize("mutate", ["extra_column", "narrower_type", "missing_column"])
def test_a_stage_refuses_an_input_part_with_a_foreign_schema(tmp_path, mutate):
    cfg = demo_cfg(tmp_path)
    plan = plan_run(cfg)
    ingest = store_for(cfg, "ingest", plan.keys["ingest"])
    table = pa.Table.from_pylist(ingest.read_rows(0), schema=INGEST)
    if mutate == "extra_column":
        table = table.append_column("payload", pa.array(["x"] * table.num_rows))
    elif mutate == "narrower_type":
        table = table.set_column(0, pa.field("image_id", pa.int32()), table.column("image_id").cast(pa.int32()))
    else:
        table = table.drop_columns(["objects"])
    _forge_committed(ingest, 0, table)
    with pytest.raises(SchemaMismatch, match="part-00000.parquet"):
        execute_part(cfg, "caption", 0, plan.keys)
    assert not store_for(cfg, "caption", plan.keys["caption"]).is_committed(0), "nothing computed from it"


def test_export_refuses_a_foreign_shard(tmp_path):
    from storage.export import export_rlipv2_json
    from storage.parts import StageStore
    from storage.schemas import SHARD

    foreign = pa.table({"image_id": [1], "relationships": ["not a list"]})
    shard_dir = tmp_path / "run" / "shard"
    shard_dir.mkdir(parents=True)
    # Dropped in by hand, never committed: not part of the run's shards at all.
    pq.write_table(foreign, shard_dir / "part-00000.parquet")
    with pytest.raises(FileNotFoundError, match="no shard output"):
        export_rlipv2_json(tmp_path / "run", tmp_path / "out.json")
    # Passed off as committed (marker forged to match): its schema still gives it away.
    store = StageStore(tmp_path / "run", "shard", "k", fsync=False)
    store.prepare({}, 1)
    store.write_part(0, [], [])
    _forge_committed(store, 0, foreign)
    assert SHARD.names != foreign.schema.names
    with pytest.raises(SchemaMismatch):
        export_rlipv2_json(tmp_path / "run", tmp_path / "out.json")
    assert not (tmp_path / "out.json").exists()
