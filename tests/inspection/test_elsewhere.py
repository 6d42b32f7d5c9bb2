"""A run copied from the machine that made it is inspected where it lands (relative paths, --images)."""

from __future__ import annotations

import shutil

from pipeline.cli import main


def test_a_copied_run_is_inspected_shown_reported_and_diffed_by_relative_path(coco_runs, tmp_path, monkeypatch,
                                                                               capsys):
    landed = tmp_path / "from-cluster"
    shutil.copytree(coco_runs.oracle, landed / "coco-oracle")
    monkeypatch.chdir(landed)  # nothing of the original machine's layout is reachable from here by relative path

    assert main(["inspect", "coco-oracle", "--stage", "tag", "--sample", "0"]) == 0
    assert "relations per image" in capsys.readouterr().out
    assert main(["inspect", "coco-oracle", "--image", "790"]) == 0
    assert "== shard" in capsys.readouterr().out

    assert main(["show", "coco-oracle", "--image", "790", "--out", "790.png"]) == 1
    assert "--images" in capsys.readouterr().err  # says how to point at the photos
    assert main(["show", "coco-oracle", "--image", "790", "--images", str(coco_runs.images), "--out", "790.png"]) == 0
    assert (landed / "790.png").is_file()

    assert main(["report", "coco-oracle", "--images", str(coco_runs.images), "--gallery", "2"]) == 0
    assert (landed / "coco-oracle" / "report.html").is_file()
    assert main(["diff", "coco-oracle", str(coco_runs.oracle)]) == 0
    assert "added 0   removed 0" in capsys.readouterr().out
