"""A run folder of the old layout (part-*.done beside the parts, errors/) as a user meets it after upgrading."""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.cli import main
from pipeline.label import run_label
from tests.reliability.helpers import STAGE_DIRS, demo_cfg, part_files


def _to_old_layout(run_dir: Path) -> None:
    """Rewrite every stage folder the way relfactory laid it out before _markers/ and _errors/."""
    for stage in STAGE_DIRS:
        stage_dir = run_dir / stage
        (stage_dir / "errors").mkdir()
        for marker_path in sorted((stage_dir / "_markers").glob("part-*.json")):
            marker = json.loads(marker_path.read_text())
            name = Path(marker["errors_file"]["path"]).name
            (stage_dir / "_errors" / name).rename(stage_dir / "errors" / name)
            marker["errors_file"]["path"] = f"errors/{name}"
            (stage_dir / marker_path.name.replace(".json", ".done")).write_text(json.dumps(marker))
            marker_path.unlink()
        for sub in ("_markers", "_errors", "_staging"):
            (stage_dir / sub).rmdir()


def test_old_run_is_refused_with_what_to_do_then_migrated_without_recomputing(tmp_path, capsys):
    cfg = demo_cfg(tmp_path / "runs", name="old")
    run_label(cfg)
    before = part_files(cfg.run_dir)
    _to_old_layout(cfg.run_dir)

    assert main(["export", "old", "--output", str(tmp_path / "runs"), "--dest", str(tmp_path / "x.json")]) == 1
    err = capsys.readouterr().err
    assert "relfactory migrate" in err and "Traceback" not in err, err

    assert main(["migrate", "old", "--output", str(tmp_path / "runs")]) == 0
    assert "shard: migrated (3 committed parts kept)" in capsys.readouterr().out
    assert part_files(cfg.run_dir) == before
    _, manifest = run_label(cfg)  # every part is still committed under its key: nothing is recomputed
    assert manifest["this_invocation"]["parts_computed"] == 0
    assert main(["export", "old", "--output", str(tmp_path / "runs"), "--dest", str(tmp_path / "x.json")]) == 0


def test_label_migrates_an_old_run_on_its_own(tmp_path):
    cfg = demo_cfg(tmp_path / "runs", name="old")
    run_label(cfg)
    before = part_files(cfg.run_dir)
    _to_old_layout(cfg.run_dir)
    _, manifest = run_label(cfg)
    assert manifest["this_invocation"]["parts_computed"] == 0
    assert part_files(cfg.run_dir) == before
