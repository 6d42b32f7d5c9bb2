from __future__ import annotations

import json

from pipeline.cli import main


def test_label_runs_inspect_export(tmp_path, capsys):
    out = str(tmp_path)
    args = ["label", "--dataset-kind", "demo", "--captioner", "oracle", "--n-cap", "5", "--run", "cli",
            "--output", out, "--executor", "local", "--orchestrator", "none", "--part-size", "3"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "shard" in printed and "complete" in printed

    assert main(args) == 0
    assert "up to date" in capsys.readouterr().out

    assert main(["runs", "--output", out]) == 0
    assert "cli" in capsys.readouterr().out

    assert main(["inspect", "cli", "--output", out, "--stage", "tag"]) == 0
    text = capsys.readouterr().out
    assert "rows: " in text and "relation texts" in text

    dest = tmp_path / "x.json"
    assert main(["export", "cli", "--output", out, "--dest", str(dest)]) == 0
    assert len(json.loads(dest.read_text())) == 6


def test_bad_flag_value_is_refused_before_work(tmp_path, capsys):
    code = main(["label", "--dataset-kind", "demo", "--eta", "1.5", "--output", str(tmp_path),
                 "--orchestrator", "none"])
    assert code == 2
    assert "tag.eta" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_missing_annotation_file_is_one_clear_line(tmp_path, capsys):
    (tmp_path / "c.json").write_text('{"annotations": [{"id": 1, "image_id": 1, "caption": "a cat"}]}')
    code = main(["label", "--dataset-kind", "coco", "--annotations", str(tmp_path / "nope.json"),
                 "--images", str(tmp_path), "--captioner", "oracle", "--captions-file", str(tmp_path / "c.json"),
                 "--output", str(tmp_path / "runs"), "--orchestrator", "none", "--executor", "local"])
    assert code == 1
    assert "annotation file not found" in capsys.readouterr().err
