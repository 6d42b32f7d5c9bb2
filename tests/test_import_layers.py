"""Imports point one way: storage <- pipeline <- flows / CLI, and no module pair imports each other.

Read statically from the source (every import statement, including the ones
inside functions and under ``TYPE_CHECKING``), so a deferred import cannot hide
a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, absolute names (``from x import y`` counts x and x.y)."""
    package = _module_name(path).rsplit(".", 1)[0] if path.name != "__init__.py" else _module_name(path)
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def _imports(module: str) -> set[str]:
    return imported_modules(ROOT / (module.replace(".", "/") + ".py"))


def _reaches(imports: set[str], target: str) -> bool:
    return any(name == target or name.startswith(target + ".") for name in imports)


@pytest.mark.parametrize("upper", ["pipeline.runner", "pipeline.label", "pipeline.executors", "pipeline.cli",
                                   "pipeline.cli_label", "flows"])
def test_storage_does_not_import_the_layers_above_it(upper: str) -> None:
    offenders = [str(path.relative_to(ROOT)) for path in sorted((ROOT / "storage").glob("*.py"))
                 if _reaches(imported_modules(path), upper)]
    assert offenders == [], f"storage modules importing {upper}: {offenders}"


@pytest.mark.parametrize("lower, upper", [
    ("storage.manifest", "pipeline.runner"),
    ("pipeline.demo", "pipeline.cli"),
    ("stages.train.distributed", "stages.train.engine"),
])
def test_no_import_cycle_between(lower: str, upper: str) -> None:
    assert not (_reaches(_imports(lower), upper) and _reaches(_imports(upper), lower)), \
        f"{lower} and {upper} import each other"
    assert not _reaches(_imports(lower), upper), f"{lower} must not import {upper} (it sits above it)"


def test_the_checker_sees_deferred_and_relative_imports(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    module = package / "mod.py"
    module.write_text("def f():\n    from .engine import train\n    import pipeline.runner\n")
    global ROOT
    saved, ROOT = ROOT, tmp_path
    try:
        assert {"pkg.engine", "pkg.engine.train", "pipeline.runner"} <= imported_modules(module)
    finally:
        ROOT = saved
