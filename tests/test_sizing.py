"""Part and group sizes of large runs (pipeline/sizing.py) and the ingest that records its choice."""

from __future__ import annotations

import json

from pipeline.config import load_config
from pipeline.runner import plan_run
from pipeline.sizing import auto_part_size, group_size, part_groups


def test_auto_part_size_keeps_small_runs_and_bounds_the_part_count():
    assert auto_part_size(80, 2) == 64  # the old default below 32 k images
    assert auto_part_size(32_768, 2) == 64
    assert auto_part_size(118_287, 2) == 256  # COCO train2017: 463 parts instead of 1,849
    assert auto_part_size(1_000_000, 2) == 2048
    assert auto_part_size(1_700_000, 2) == 4096  # Objects365: 416 parts instead of 26,563
    assert auto_part_size(10**9, 2) == 4096  # capped


def test_auto_part_size_leaves_every_worker_several_parts():
    # 300 workers on COCO: 256-image parts would give 463 parts, 1.5 per worker.
    assert auto_part_size(118_287, 300) == 64
    assert auto_part_size(1_700_000, 150) == 2048  # 830 parts, not 416


def test_groups_cover_every_part_once_in_order():
    parts = list(range(1000))
    groups = part_groups(parts, workers=2)
    assert [p for g in groups for p in g] == parts
    assert len(groups) <= 256 and all(len(g) == group_size(1000, 2) for g in groups[:-1])
    assert part_groups([3, 4, 9], workers=2) == [[3, 4, 9]]
    assert part_groups([], workers=2) == []


def _config(tmp_path, dataset, **extra):
    return load_config({"name": "sized", "output": str(tmp_path / "runs"), "executor": "local",
                        "dataset": {"kind": "coco-format", "annotations": str(dataset / "ann.json"),
                                    "images": str(dataset / "images")},
                        "caption": {"backend": "oracle", "captions_file": str(dataset / "captions.json")}, **extra})


def _dataset(tmp_path, n_images):
    folder = tmp_path / "data"
    (folder / "images").mkdir(parents=True)
    images = []
    for i in range(1, n_images + 1):
        (folder / "images" / f"{i}.jpg").write_bytes(b"")
        images.append({"id": i, "file_name": f"{i}.jpg", "width": 10, "height": 10})
    (folder / "ann.json").write_text(json.dumps({"images": images, "annotations": [],
                                                 "categories": [{"id": 1, "name": "person"}]}))
    (folder / "captions.json").write_text(json.dumps({"annotations": [
        {"id": i, "image_id": i, "caption": "a person"} for i in range(1, n_images + 1)]}))
    return folder


def test_ingest_records_the_chosen_size_and_a_resumed_ingest_keeps_it(tmp_path, monkeypatch):
    import pipeline.runner

    dataset = _dataset(tmp_path, 300)
    monkeypatch.setattr(pipeline.runner, "auto_part_size", lambda n, workers: 100 if workers == 2 else 50)
    plan = plan_run(_config(tmp_path, dataset, workers=2))
    stats = json.loads((plan.run_dir / "ingest" / "_STATS.json").read_text())
    assert (plan.n_parts, stats["part_size"]) == (3, 100)
    # An ingest interrupted before _STATS.json: resumed with other workers, it keeps 100 a part.
    (plan.run_dir / "ingest" / "_STATS.json").unlink()
    plan = plan_run(_config(tmp_path, dataset, workers=3))
    assert plan.n_parts == 3
    assert json.loads((plan.run_dir / "ingest" / "_STATS.json").read_text())["part_size"] == 100
