"""Pixel-free taggers: geometry, the caption's number, graded confidences and η, caps, the rule baselines."""

from __future__ import annotations

from pathlib import Path

import pytest

import stages.tag as tag_stage
from pipeline.config import RunConfig
from pipeline.contracts import Row
from stages.match import run_match
from stages.tag import run_tag
from stages.taggers import ScoredRelation, Tagger, TaggerResult
from stages.taggers.geometry import affinity, box_iou, salience, scaled_distance, spatial_agreement
from stages.taggers.layout import CHOSEN_FLOOR, is_negated

ROOT = Path("/nonexistent-image-root")
Box = tuple[float, float, float, float]


def _box(x: float, y: float, w: float, h: float) -> Row:
    return {"x": x, "y": y, "w": w, "h": h}


def _image(boxes: dict[int, tuple[str, Box]], image_id: int = 1) -> Row:
    return {"image_id": image_id, "file_name": f"{image_id}.jpg", "width": 200, "height": 200, "dataset": "t",
            "data_split": "train",
            "objects": [{"object_id": i, "category_id": 1, "category": c, "x": x, "y": y, "w": w, "h": h}
                        for i, (c, (x, y, w, h)) in boxes.items()]}


def _caption(index: int, *triplets: tuple[str, str, str, str, str], image_id: int = 1) -> Row:
    return {"image_id": image_id, "caption_index": index, "caption": "", "parser": "rules",
            "triplets": [{"subject": s, "subject_head": sh, "relation": r, "relation_lemma": r, "object": o,
                          "object_head": oh} for s, sh, r, o, oh in triplets]}


def _tag(image: Row, captions: list[Row], **tag: object) -> Row:
    cfg = RunConfig(tag=tag)
    match = run_match({"ingest": [image], "parse": captions}, cfg).rows
    (row,) = run_tag({"ingest": [image], "match": match}, cfg, image_root=ROOT).rows
    return row


def _pairs(row: Row) -> set[tuple[int, int, str]]:
    return {(r["subject_id"], r["object_id"], r["predicate"]) for r in row["relationships"]}


# -- geometry ---------------------------------------------------------------------------------------


def test_affinity_prefers_touching_then_near_boxes_and_saturates_on_overlap() -> None:
    person = _box(0, 0, 10, 20)
    touching, near, far = _box(8, 5, 10, 10), _box(14, 5, 4, 4), _box(150, 150, 4, 4)
    assert affinity(person, touching) >= 0.5 > affinity(person, near) > affinity(person, far) > 0
    # Past IoU 1/3, more overlap is no more evidence.
    assert affinity(person, _box(0, 0, 10, 12)) == affinity(person, person) == 1.0


def test_scaled_distance_is_scale_free() -> None:
    a, b = _box(0, 0, 10, 10), _box(30, 0, 10, 10)
    big_a, big_b = _box(0, 0, 100, 100), _box(300, 0, 100, 100)
    assert scaled_distance(a, b) == pytest.approx(scaled_distance(big_a, big_b))
    assert scaled_distance(a, a) == 0.0


@pytest.mark.parametrize(("relation", "subject", "obj", "agrees"), [
    ("sit on", _box(10, 0, 10, 10), _box(0, 8, 30, 10), True),  # person above the bench
    ("sit on", _box(10, 20, 10, 10), _box(0, 0, 30, 10), False),
    ("stand under", _box(10, 20, 10, 10), _box(0, 0, 30, 10), True),  # person below the umbrella
    ("stand under", _box(10, 0, 10, 10), _box(0, 20, 30, 10), False),
    ("sit in", _box(12, 12, 5, 5), _box(0, 0, 40, 40), True),  # person inside the car
    ("sit in", _box(50, 50, 5, 5), _box(0, 0, 40, 40), False),
    ("stand next to", _box(0, 0, 10, 20), _box(12, 0, 10, 20), True),
    ("stand next to", _box(0, 0, 10, 10), _box(0, 30, 10, 10), False),  # stacked, not side by side
    ("stand behind", _box(0, 0, 10, 20), _box(5, 5, 10, 20), True),
    ("stand behind", _box(0, 0, 10, 20), _box(50, 0, 10, 20), False),
    ("hold", _box(10, 20, 10, 10), _box(0, 0, 30, 10), True),  # not a spatial relation
])
def test_spatial_agreement(relation: str, subject: Row, obj: Row, agrees: bool) -> None:
    assert (spatial_agreement(relation, subject, obj) == 1.0) is agrees
    assert 0.0 < spatial_agreement(relation, subject, obj) <= 1.0


def test_salience_prefers_large_central_boxes() -> None:
    image = {"width": 100, "height": 100}
    big_central, small_corner = _box(30, 30, 40, 40), _box(0, 0, 10, 10)
    largest = 1600.0
    assert salience(big_central, image, largest) > salience(small_corner, image, largest)
    assert 0.0 <= salience(small_corner, image, largest) <= salience(big_central, image, largest) <= 1.0


# -- the caption's number ----------------------------------------------------------------------------

# Three people; only the first stands at the bat.
BATTER = _image({1: ("person", (0, 0, 20, 60)), 2: ("person", (60, 0, 20, 60)), 3: ("person", (120, 0, 20, 60)),
                 4: ("baseball bat", (15, 20, 20, 5))})


def test_a_singular_subject_gets_one_pair_not_every_person() -> None:
    row = _tag(BATTER, [_caption(0, ("a baseball player", "player", "hold", "a bat", "bat"))],
               tagger="layout")
    assert _pairs(row) == {(1, 4, "hold")}
    assert _pairs(_tag(BATTER, [_caption(0, ("a baseball player", "player", "hold", "a bat", "bat"))],
                       tagger="greedy-all")) == {(1, 4, "hold"), (2, 4, "hold"), (3, 4, "hold")}


def test_a_stated_count_bounds_the_pairs_and_each_rider_gets_their_own_horse() -> None:
    image = _image({1: ("person", (0, 0, 20, 40)), 2: ("person", (100, 0, 20, 40)), 3: ("person", (160, 150, 20, 40)),
                    11: ("horse", (105, 30, 40, 30)), 12: ("horse", (0, 30, 40, 30))})
    row = _tag(image, [_caption(0, ("two men", "man", "ride", "horses", "horse"))], tagger="layout")
    assert _pairs(row) == {(1, 12, "ride"), (2, 11, "ride")}
    one = _tag(image, [_caption(0, ("a man", "man", "ride", "a horse", "horse"))], tagger="layout")
    assert len(one["relationships"]) == 1


def test_an_uncounted_plural_takes_the_people_near_the_object_not_everyone() -> None:
    image = _image({1: ("person", (10, 40, 20, 40)), 2: ("person", (45, 40, 20, 40)), 3: ("person", (80, 40, 20, 40)),
                    4: ("person", (170, 0, 20, 40)), 9: ("dining table", (0, 70, 110, 40))})
    row = _tag(image, [_caption(0, ("people", "people", "sit at", "a table", "table"))], tagger="layout")
    assert _pairs(row) == {(1, 9, "sit at"), (2, 9, "sit at"), (3, 9, "sit at")}


def test_unknown_number_takes_mutual_best_pairs_and_keeps_the_rest_as_runners_up() -> None:
    image = _image({1: ("person", (0, 0, 20, 60)), 2: ("person", (100, 0, 20, 60)),
                    5: ("cup", (5, 20, 5, 5)), 6: ("cup", (12, 25, 5, 5)), 7: ("cup", (105, 20, 5, 5))})
    # No phrase text: nothing said about number (like the pair benchmark's proposals).
    captions = [_caption(0, (None, "person", "hold", None, "cup"))]
    # Cup 5 is person 1's best (it overlaps more); cup 6 prefers person 1, who prefers cup 5.
    assert _pairs(_tag(image, captions, tagger="layout")) == {(1, 5, "hold"), (2, 7, "hold")}
    everything = _tag(image, captions, tagger="layout", eta=0.0)["relationships"]
    confidence = {(r["subject_id"], r["object_id"]): r["confidence"] for r in everything}
    # The one-sided best pair (1, 6) is the best runner-up: the first to come in below the default η.
    runners_up = {pair: value for pair, value in confidence.items() if pair not in {(1, 5), (2, 7)}}
    assert max(runners_up, key=runners_up.get) == (1, 6)
    assert all(value <= CHOSEN_FLOOR for value in runners_up.values())


@pytest.mark.parametrize(("relation", "negated"), [
    ("no interaction", True), ("not hold", True), ("isn't holding", True), ("walk without", True),
    ("hold", False), ("sit on", False), ("knot", False), ("note", False),
])
def test_is_negated(relation: str, negated: bool) -> None:
    assert is_negated(relation) is negated


def test_a_negated_relation_goes_to_every_pair() -> None:
    image = _image({1: ("person", (0, 0, 20, 60)), 2: ("person", (100, 0, 20, 60)), 5: ("cup", (5, 20, 5, 5))})
    row = _tag(image, [_caption(0, (None, "person", "no interaction", None, "cup"))], tagger="layout")
    confidence = {(r["subject_id"], r["object_id"]): r["confidence"] for r in row["relationships"]}
    assert set(confidence) == {(1, 5), (2, 5)}
    assert confidence[(2, 5)] > confidence[(1, 5)] > CHOSEN_FLOOR  # apart is surer than touching


# -- graded confidences and η ------------------------------------------------------------------------


def test_layout_confidences_are_graded_and_chosen_pairs_sit_above_the_default_eta() -> None:
    row = _tag(BATTER, [_caption(0, ("a baseball player", "player", "hold", "a bat", "bat"))],
               tagger="layout", eta=0.0)
    confidence = {(r["subject_id"], r["object_id"]): r["confidence"] for r in row["relationships"]}
    assert set(confidence) == {(1, 4), (2, 4), (3, 4)}  # η = 0 shows the runners-up too
    assert all(0.0 <= c <= 1.0 for c in confidence.values())
    assert confidence[(1, 4)] > CHOSEN_FLOOR >= confidence[(2, 4)] > confidence[(3, 4)] > 0.0
    # An unambiguous pair (one candidate, boxes touching) is surer than the contested choice.
    alone = _image({1: ("person", (0, 0, 20, 60)), 4: ("baseball bat", (15, 20, 20, 5))})
    (clear,) = _tag(alone, [_caption(0, ("a player", "player", "hold", "a bat", "bat"))], tagger="layout")[
        "relationships"]
    assert clear["confidence"] > confidence[(1, 4)]


def test_eta_is_a_strict_threshold_on_graded_scores() -> None:
    captions = [_caption(0, ("a baseball player", "player", "hold", "a bat", "bat"))]
    scores = sorted(r["confidence"] for r in _tag(BATTER, captions, tagger="layout", eta=0.0)["relationships"])
    kept = [len(_tag(BATTER, captions, tagger="layout", eta=eta)["relationships"]) for eta in (0.0, 0.1, 0.2, 0.9)]
    assert kept == sorted(kept, reverse=True) and kept[0] == 3 and kept[2] == 1
    at_score = _tag(BATTER, captions, tagger="layout", eta=scores[-1])
    assert at_score["relationships"] == []  # a score equal to η is not above it


# -- caps --------------------------------------------------------------------------------------------


class _Fixed(Tagger):
    name = "fixed"
    needs_pixels = False

    def __init__(self, scores: list[ScoredRelation]) -> None:
        self.scores = scores

    def tag(self, chunks, images, image_root):
        return TaggerResult(list(self.scores))


def test_caps_keep_the_most_confident_relations_per_proposal_and_per_image(monkeypatch) -> None:
    people = {i: ("person", (10.0 * i, 0, 5, 5)) for i in range(1, 7)}
    image = _image({**people, 20: ("cake", (0, 50, 10, 10)), 21: ("cake", (30, 50, 10, 10))})
    captions = [_caption(0, ("people", "people", "cut", "cakes", "cake"), ("people", "people", "eat", "cakes", "cake"))]
    match = run_match({"ingest": [image], "parse": captions}, RunConfig()).rows
    scores = [ScoredRelation(1, s, o, relation, 0.3 + 0.05 * s + (0.01 if o == 20 else 0))
              for s in range(1, 7) for o in (20, 21) for relation in ("cut", "eat")]
    monkeypatch.setattr(tag_stage, "build_tagger", lambda tag_cfg: _Fixed(scores))

    def tagged(**caps: object) -> Row:
        cfg = RunConfig(tag=caps)
        (row,) = run_tag({"ingest": [image], "match": match}, cfg, image_root=ROOT).rows
        return row

    uncapped = tagged(max_relations_per_proposal=None, max_relations_per_image=None)
    assert len(uncapped["relationships"]) == 24
    row = tagged(max_relations_per_proposal=3, max_relations_per_image=None)
    assert [(p["relation"], p["n_candidates"], p["n_tagged"], p["n_capped"]) for p in row["class_proposals"]] == [
        ("cut", 12, 3, 9), ("eat", 12, 3, 9)]
    cut = [(r["subject_id"], r["object_id"]) for r in row["relationships"] if r["predicate"] == "cut"]
    assert cut == [(6, 20), (6, 21), (5, 20)]  # the three most confident
    index = {p["relation"]: i for i, p in enumerate(row["class_proposals"])}
    assert all(r["proposal_index"] == index[r["predicate"]] for r in row["relationships"])
    per_image = tagged(max_relations_per_proposal=10, max_relations_per_image=5)
    assert len(per_image["relationships"]) == 5
    assert sum(p["n_capped"] for p in per_image["class_proposals"]) == 19
    confidences = [r["confidence"] for r in per_image["relationships"]]
    assert confidences == sorted(confidences, reverse=True) and min(confidences) >= max(
        r["confidence"] for r in uncapped["relationships"][5:])


# -- the rule baselines ------------------------------------------------------------------------------

FARM = _image({1: ("person", (0, 0, 20, 40)), 2: ("person", (60, 0, 20, 40)),
               11: ("horse", (10, 30, 40, 30)), 12: ("horse", (150, 150, 40, 30))})
FARM_CAPTIONS = [_caption(0, ("a man", "man", "ride", "a horse", "horse")),
                 _caption(1, ("a man", "man", "feed", "a horse", "horse")),
                 _caption(2, ("a man", "man", "walk", "a horse", "horse"))]


def test_paper_greedy_puts_one_seeded_random_text_on_each_pair() -> None:
    row = _tag(FARM, FARM_CAPTIONS, tagger="greedy")
    by_pair: dict[tuple[int, int], list[str]] = {}
    for s, o, p in _pairs(row):
        by_pair.setdefault((s, o), []).append(p)
    assert set(by_pair) == {(1, 11), (1, 12), (2, 11), (2, 12)}
    assert all(len(texts) == 1 and texts[0] in {"ride", "feed", "walk"} for texts in by_pair.values())
    assert all(r["confidence"] == 1.0 for r in row["relationships"])
    assert _pairs(_tag(FARM, FARM_CAPTIONS, tagger="greedy")) == _pairs(row)  # seeded: the same every run
    choices = {frozenset(_pairs(_tag(FARM, FARM_CAPTIONS, tagger="greedy", seed=seed))) for seed in range(8)}
    assert len(choices) > 1  # the seed drives the choice
    overlap = _tag(FARM, FARM_CAPTIONS, tagger="greedy", require_overlap=True)
    assert {(s, o) for s, o, _ in _pairs(overlap)} == {(1, 11)}


def test_greedy_all_puts_every_text_on_every_pair() -> None:
    row = _tag(FARM, FARM_CAPTIONS, tagger="greedy-all", max_relations_per_proposal=None)
    assert len(row["relationships"]) == 12


def test_nearest_gives_each_object_the_most_overlapping_else_nearest_subject() -> None:
    row = _tag(FARM, [_caption(0, ("a man", "man", "ride", "a horse", "horse"))], tagger="nearest")
    # Horse 11 overlaps person 1; horse 12 overlaps no one and person 2's centre is nearer.
    assert _pairs(row) == {(1, 11, "ride"), (2, 12, "ride")}
    assert box_iou(FARM["objects"][0], FARM["objects"][2]) > 0


def test_a_box_with_a_same_class_twin_is_less_certain() -> None:
    single = _image({1: ("person", (0, 0, 20, 60)), 5: ("cup", (10, 20, 10, 10))})
    twins = _image({1: ("person", (0, 0, 20, 60)), 5: ("cup", (10, 20, 10, 10)), 6: ("cup", (11, 21, 10, 10))})
    captions = [_caption(0, ("a man", "man", "hold", "two cups", "cup"))]
    (alone,) = _tag(single, captions, tagger="layout")["relationships"]
    doubled = _tag(twins, captions, tagger="layout")["relationships"]
    assert {(r["subject_id"], r["object_id"]) for r in doubled} == {(1, 5), (1, 6)}  # both kept at the default η
    assert all(CHOSEN_FLOOR < r["confidence"] < alone["confidence"] for r in doubled)
