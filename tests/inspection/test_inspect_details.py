"""`relfactory inspect`: per-image statistics, images without output, confidence vs η, --errors, --image."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pyarrow.parquet as pq

from pipeline.cli import main


def _rows(run_dir, stage):
    return [r for f in sorted((run_dir / stage).glob("part-*.parquet")) for r in pq.read_table(f).to_pylist()]


def test_tag_statistics_match_the_data(coco_runs, capsys):
    assert main(["inspect", str(coco_runs.oracle), "--stage", "tag", "--sample", "0"]) == 0
    text = capsys.readouterr().out
    per_image = {r["image_id"]: 0 for r in _rows(coco_runs.oracle, "ingest")}
    for row in _rows(coco_runs.oracle, "tag"):
        per_image[row["image_id"]] += len(row["relationships"])
    counts = np.array(sorted(per_image.values()))
    top = counts[-math.ceil(0.01 * len(counts)):]
    expected = (f"relations per image: median {round(float(np.median(counts)), 3):g}  "
                f"p95 {round(float(np.percentile(counts, 95)), 3):g}  max {counts.max()}  "
                f"(over {len(counts)} images, {int((counts == 0).sum())} with none; "
                f"top 1 % of images hold {top.sum() / counts.sum():.0%})")
    assert expected in text

    proposals = Counter((r["image_id"], p["subject_category"], p["object_category"], q["relation"])
                        for r in _rows(coco_runs.oracle, "match") for p in r["pairs"] for q in p["proposals"])
    spread = np.array(sorted(proposals.values()))
    assert (f"candidate pairs per proposal: median {round(float(np.median(spread)), 3):g}  "
            f"p95 {round(float(np.percentile(spread, 95)), 3):g}  max {spread.max()}") in text

    without = int((counts == 0).sum())
    assert f"images with no relations: {without}" in text
    matched = {r["image_id"] for r in _rows(coco_runs.oracle, "match")}
    assert f"no triplet matched a pair of its boxes: {len(set(per_image) - matched)}" in text
    # Confidence against η: the run's η and the count a stricter one would keep.
    confidences = [rel["confidence"] for r in _rows(coco_runs.oracle, "tag") for rel in r["relationships"]]
    assert "kept when > η = 0.2" in text
    assert f"0.6:{sum(c > 0.6 for c in confidences)}" in text


def test_follow_one_image_through_every_stage(coco_runs, capsys):
    assert main(["inspect", "oracle", "--output", str(coco_runs.output), "--image", "790"]) == 0
    text = capsys.readouterr().out
    for stage in ("ingest", "caption", "parse", "match", "tag", "shard"):
        assert f"== {stage}" in text
    captions = [r["caption"] for r in _rows(coco_runs.oracle, "caption") if r["image_id"] == 790]
    assert captions and all(c in text for c in captions)
    pairs = [p for r in _rows(coco_runs.oracle, "match") if r["image_id"] == 790 for p in r["pairs"]]
    assert f"person {pairs[0]['subject_id']}" in text or f"{pairs[0]['subject_id']}" in text
    relations = [rel for r in _rows(coco_runs.oracle, "tag") if r["image_id"] == 790 for rel in r["relationships"]]
    assert text.count("--> ") >= 2 * len(relations)  # once in tag, once in shard

    assert "no relations:" not in text

    matched = {r["image_id"] for r in _rows(coco_runs.oracle, "match")}
    unmatched = min({r["image_id"] for r in _rows(coco_runs.oracle, "ingest")} - matched)
    assert main(["inspect", "oracle", "--output", str(coco_runs.output), "--image", str(unmatched)]) == 0
    assert capsys.readouterr().out.rstrip().endswith("no relations: no triplet matched a pair of its boxes")

    assert main(["inspect", "oracle", "--output", str(coco_runs.output), "--image", "1"]) == 0
    assert "has no image 1" in capsys.readouterr().out


def test_errors_are_listed_with_details_and_filtered_by_reason(demo_gaps, capsys):
    assert main(["inspect", str(demo_gaps), "--errors"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("errors: 1") and "[caption] image 6  no_captions" in text
    assert "has no caption for image 6" in text  # the detail, not only the reason
    assert main(["inspect", str(demo_gaps), "--errors", "stage_failed"]) == 0
    assert "errors 'stage_failed': 0; reasons present: no_captions" in capsys.readouterr().out
    assert main(["inspect", str(demo_gaps), "--stage", "shard", "--sample", "0"]) == 0
    assert "caption error: no_captions: 1  (e.g. 6)" in capsys.readouterr().out
