"""`relfactory diff` lists exactly the relations that differ between two runs."""

from __future__ import annotations

import json

import pyarrow.parquet as pq

from pipeline.cli import main


def _relations(run_dir):
    """(image, subject, object, predicate) -> confidence, read straight from the shard files."""
    out = {}
    for f in sorted((run_dir / "shard").glob("part-*.parquet")):
        for row in pq.read_table(f).to_pylist():
            for rel in row["relationships"]:
                out[(row["image_id"], rel["subject_id"], rel["object_id"], rel["predicate"])] = rel["confidence"]
    return out


def _keys(entries):
    return {(e["image_id"], e["subject_id"], e["object_id"], e["predicate"]) for e in entries}


def test_diff_of_a_stricter_eta_lists_exactly_the_relations_the_threshold_removed(coco_runs, tmp_path, capsys):
    dest = tmp_path / "diff.json"
    assert main(["diff", "oracle", "strict", "--output", str(coco_runs.output), "--json", str(dest)]) == 0
    printed = capsys.readouterr().out
    diff = json.loads(dest.read_text())
    loose = _relations(coco_runs.oracle)
    expected_removed = {key for key, confidence in loose.items() if confidence <= 0.5}
    assert _keys(diff["removed"]) == expected_removed
    assert diff["added"] == []  # a stricter η can only remove
    assert diff["relations_a"] == len(loose) and diff["relations_b"] == len(loose) - len(expected_removed)
    assert f"removed {len(expected_removed)}" in printed


def test_diff_of_fewer_captions_per_image_and_predicate(coco_runs, tmp_path, capsys):
    dest = tmp_path / "diff.json"
    assert main(["diff", str(coco_runs.oracle), str(coco_runs.two_captions), "--json", str(dest),
                 "--examples", "3"]) == 0
    printed = capsys.readouterr().out
    diff = json.loads(dest.read_text())
    five, two = _relations(coco_runs.oracle), _relations(coco_runs.two_captions)
    assert _keys(diff["removed"]) == five.keys() - two.keys() and diff["removed"]
    assert _keys(diff["added"]) == two.keys() - five.keys()
    removed_by_image = {}
    for key in five.keys() - two.keys():
        removed_by_image[key[0]] = removed_by_image.get(key[0], 0) + 1
    assert {int(i): v["removed"] for i, v in diff["by_image"].items() if v["removed"]} == removed_by_image
    removed_by_predicate = {}
    for key in five.keys() - two.keys():
        removed_by_predicate[key[3]] = removed_by_predicate.get(key[3], 0) + 1
    assert {p: v["removed"] for p, v in diff["by_predicate"].items() if v["removed"]} == removed_by_predicate
    # Examples name the boxes by class: "image 790: person 187952 --sit at--> dining table 123429  (1.00)".
    example = printed.split("examples removed:\n")[1].splitlines()[0]
    image, rest = example.strip().removeprefix("image ").split(": ", 1)
    assert any(str(k[1]) in rest and k[3] in rest for k in five.keys() - two.keys() if k[0] == int(image))
