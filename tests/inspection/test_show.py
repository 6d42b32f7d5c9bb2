"""`relfactory show` draws boxes and relation arrows where the annotations say: checked by reading pixels back."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
from PIL import Image

from pipeline.cli import main
from storage.show import ARROW_COLOR, box_color


def _annotations(run_dir, stage, image_id):
    """Boxes (ingest) and the stage's pairs for one image, read straight from the Parquet parts."""
    ingest = [r for f in sorted((run_dir / "ingest").glob("part-*.parquet"))
              for r in pq.read_table(f).to_pylist() if r["image_id"] == image_id][0]
    rows = [r for f in sorted((run_dir / stage).glob("part-*.parquet"))
            for r in pq.read_table(f).to_pylist() if r["image_id"] == image_id]
    if stage == "match":
        pairs = {(p["subject_id"], p["object_id"]) for r in rows for p in r["pairs"]}
    else:
        pairs = {(rel["subject_id"], rel["object_id"]) for r in rows for rel in r["relationships"]}
    return ingest, pairs


def _share(pixels: np.ndarray, points: list[tuple[int, int]], color: tuple[int, int, int]) -> float:
    hits = [tuple(pixels[y, x]) == color for x, y in points]
    return sum(hits) / len(hits)


def _edge_points(x0: int, y0: int, x1: int, y1: int) -> list[list[tuple[int, int]]]:
    """Points one pixel inside each edge of a box drawn 3 pixels wide inwards."""
    xs = np.linspace(x0 + 4, x1 - 4, 12).round().astype(int)
    ys = np.linspace(y0 + 4, y1 - 4, 12).round().astype(int)
    return [[(x, y0 + 1) for x in xs], [(x, y1 - 1) for x in xs], [(x0 + 1, y) for y in ys], [(x1 - 1, y) for y in ys]]


def _check_drawing(png, ingest, pairs):
    pixels = np.asarray(Image.open(png).convert("RGB"))
    assert pixels.shape[:2] == (ingest["height"], ingest["width"])
    index = {o["object_id"]: i for i, o in enumerate(ingest["objects"])}
    boxes = {o["object_id"]: (o["x"], o["y"], o["x"] + o["w"], o["y"] + o["h"]) for o in ingest["objects"]}
    related = {i for pair in pairs for i in pair}
    for object_id in related:
        x0, y0, x1, y1 = (round(v) for v in boxes[object_id])
        if min(x1 - x0, y1 - y0) < 12:
            continue  # too small to sample an edge away from its corners
        # Labels and crossing arrows may hide parts of a box; its best edge must still be its colour.
        best = max(_share(pixels, edge, box_color(index[object_id])) for edge in _edge_points(x0, y0, x1, y1))
        assert best >= 0.6, f"box {object_id} at {(x0, y0, x1, y1)} is not drawn in its colour"
    for subject, obj in pairs:
        (sx0, sy0, sx1, sy1), (ox0, oy0, ox1, oy1) = boxes[subject], boxes[obj]
        start, end = ((sx0 + sx1) / 2, (sy0 + sy1) / 2), ((ox0 + ox1) / 2, (oy0 + oy1) / 2)
        if np.hypot(end[0] - start[0], end[1] - start[1]) < 30:
            continue
        # Arrows are drawn over labels; only other boxes' outlines and names may cross them.
        points = [(round(start[0] + (end[0] - start[0]) * t), round(start[1] + (end[1] - start[1]) * t))
                  for t in np.linspace(0.12, 0.8, 12)]
        assert _share(pixels, points, ARROW_COLOR) >= 0.5, f"no arrow from {subject} to {obj}"


def test_show_draws_boxes_and_relations_where_the_annotations_are(coco_runs, tmp_path, capsys):
    out = tmp_path / "shown.png"
    assert main(["show", str(coco_runs.oracle), "--image", "790", "--images", str(coco_runs.images),
                 "--out", str(out)]) == 0
    assert "image 790" in capsys.readouterr().out
    ingest, pairs = _annotations(coco_runs.oracle, "tag", 790)
    assert len(pairs) >= 5
    _check_drawing(out, ingest, pairs)
    # Nothing is drawn far from every box: a corner no box reaches keeps the photo's pixels.
    photo = np.asarray(Image.open(coco_runs.images / ingest["file_name"]).convert("RGB")).astype(int)
    drawn = np.asarray(Image.open(out).convert("RGB")).astype(int)
    assert np.abs(photo[:60, :100] - drawn[:60, :100]).max() < 40  # JPEG decode differences only


def test_show_match_stage_draws_the_candidate_pairs(coco_runs, tmp_path, capsys):
    out = tmp_path / "pairs.png"
    assert main(["show", "oracle", "--output", str(coco_runs.output), "--stage", "match", "--image", "790",
                 "--images", str(coco_runs.images), "--out", str(out)]) == 0
    ingest, pairs = _annotations(coco_runs.oracle, "match", 790)
    assert f"{len(pairs)} candidate pairs" in capsys.readouterr().out
    _check_drawing(out, ingest, pairs)


def test_show_picks_the_image_with_most_pairs_by_default(coco_runs, tmp_path, capsys):
    assert main(["show", "oracle", "--output", str(coco_runs.output), "--stage", "match",
                 "--images", str(coco_runs.images), "--out", str(tmp_path / "busy.png")]) == 0
    counts = {}
    for f in sorted((coco_runs.oracle / "match").glob("part-*.parquet")):
        for row in pq.read_table(f).to_pylist():
            counts[row["image_id"]] = counts.get(row["image_id"], 0) + len(row["pairs"])
    busiest = max(counts, key=lambda i: (counts[i], -i))
    assert f"image {busiest}, " in capsys.readouterr().out


def test_show_without_the_photos_says_how_to_point_at_them(coco_runs, tmp_path, capsys):
    manifest = json.loads((coco_runs.oracle / "manifest.json").read_text())
    assert not manifest["config"]["dataset"]["images"].startswith("/")  # no machine path is recorded
    code = main(["show", str(coco_runs.oracle), "--image", "790", "--out", str(tmp_path / "x.png"),
                 "--images", str(tmp_path)])
    assert code == 1
    assert "not found" in capsys.readouterr().err and not (tmp_path / "x.png").exists()
