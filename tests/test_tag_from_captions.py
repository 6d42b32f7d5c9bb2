"""The issue's two failures, caption to tag with the real parser: the caption's number bounds the pairs."""

from __future__ import annotations

from pipeline.config import RunConfig
from stages.match import run_match
from stages.parse import run_parse
from stages.tag import run_tag


def _relations(caption: str, boxes: list[tuple[str, tuple[float, float, float, float]]], tagger: str) -> list[tuple]:
    image = {"image_id": 1, "file_name": "1.jpg", "width": 640, "height": 480, "dataset": "t", "data_split": "train",
             "objects": [{"object_id": i + 1, "category_id": 1, "category": c, "x": x, "y": y, "w": w, "h": h}
                         for i, (c, (x, y, w, h)) in enumerate(boxes)]}
    cfg = RunConfig(tag={"tagger": tagger, "max_relations_per_proposal": None, "max_relations_per_image": None})
    parsed = run_parse({"caption": [{"image_id": 1, "caption_index": 0, "caption": caption, "captioner": "oracle",
                                     "model_id": "test", "decoding": "{}", "seed": 0}]}, cfg).rows
    matched = run_match({"ingest": [image], "parse": parsed}, cfg).rows
    rows = run_tag({"ingest": [image], "match": matched}, cfg).rows
    return sorted((r["subject_id"], r["predicate"], r["object_id"]) for row in rows for r in row["relationships"])


def test_one_batter_holds_the_bat_not_all_thirteen_people() -> None:
    people = [("person", (40.0 * i, 200, 30, 120)) for i in range(13)]
    boxes = [*people, ("baseball bat", (125, 230, 40, 8))]  # in the hands of person 4
    layout = _relations("A baseball player holding a baseball bat", boxes, "layout")
    assert layout == [(4, "hold", 14)]
    assert len(_relations("A baseball player holding a baseball bat", boxes, "greedy-all")) == 13


def test_the_bride_and_groom_cut_one_cake_not_every_person_every_cake() -> None:
    people = [("person", (60.0 * i, 150, 40, 150)) for i in range(10)]  # 1 and 2 stand at the wedding cake
    cupcakes = [("cake", (60.0 * j + 10, 20, 20, 15)) for j in range(10)]  # on a shelf above everyone
    boxes = [*people, *cupcakes, ("cake", (90, 220, 40, 30))]
    layout = _relations("The bride and groom cutting a cake", boxes, "layout")
    assert layout == [(2, "cut", 21), (3, "cut", 21)]  # two people ("bride", "groom"), one cake ("a cake")
    assert len(_relations("The bride and groom cutting a cake", boxes, "greedy-all")) == 110
