"""Grammatical number and stated count of caption phrases, and how match carries them to tag."""

from __future__ import annotations

import pytest

from pipeline.config import RunConfig
from stages.entity_number import UNKNOWN, EntityNumber, combine, entity_number
from stages.match import run_match
from stages.taggers.proposals import image_proposals


@pytest.mark.parametrize(("phrase", "head", "expected"), [
    ("a man", "man", EntityNumber("singular", 1)),
    ("the man", "man", EntityNumber("singular", 1)),
    ("man", "man", EntityNumber("singular", 1)),  # captions drop articles: a bare singular is still one
    ("two young men", "man", EntityNumber("plural", 2)),
    ("3 dogs", "dog", EntityNumber("plural", 3)),
    ("one of the horses", "horse", EntityNumber("singular", 1)),
    ("a couple of birds", "bird", EntityNumber("plural", 2)),
    ("men", "man", EntityNumber("plural", None)),
    ("horses", "horse", EntityNumber("plural", None)),
    ("people", "people", EntityNumber("plural", None)),
    ("a group of skiers", "skier", EntityNumber("plural", None)),
    ("several cups", "cup", EntityNumber("plural", None)),
    ("sheep", "sheep", UNKNOWN),  # written the same in both numbers: a bare one says nothing
    ("a sheep", "sheep", EntityNumber("singular", 1)),
    ("a woman's umbrella", "umbrella", EntityNumber("singular", 1)),
    (None, "man", UNKNOWN),
    ("", None, UNKNOWN),
])
def test_entity_number(phrase: str | None, head: str | None, expected: EntityNumber) -> None:
    assert entity_number(phrase, head) == expected


def test_combine_takes_the_caption_majority_and_its_most_stated_count() -> None:
    one, two, men = EntityNumber("singular", 1), EntityNumber("plural", 2), EntityNumber("plural", None)
    assert combine([one, one, two]) == one
    assert combine([one, two, men]) == two  # plural wins 2:1; the only stated plural count is 2
    assert combine([one, two]) == two  # a tie goes to plural
    assert combine([men, men]) == men
    assert combine([EntityNumber("plural", 2), EntityNumber("plural", 3)]) == EntityNumber("plural", 3)
    assert combine([UNKNOWN, UNKNOWN]) == UNKNOWN
    assert combine([UNKNOWN, one]) == one


def _triplet(subject: str, subject_head: str, relation: str, obj: str, object_head: str) -> dict:
    return {"subject": subject, "subject_head": subject_head, "relation": relation, "relation_lemma": relation,
            "object": obj, "object_head": object_head}


def test_match_records_each_captions_number_and_tag_reads_the_consensus() -> None:
    boxes = [("person", 1), ("person", 2), ("person", 3), ("cake", 4), ("cake", 5)]
    ingest = [{"image_id": 1, "file_name": "1.jpg", "width": 100, "height": 100, "dataset": "t", "data_split": "train",
               "objects": [{"object_id": i, "category_id": 1, "category": c, "x": 10.0 * i, "y": 0.0, "w": 5.0, "h": 5.0}
                           for c, i in boxes]}]
    parse = [
        # Coordinated subjects are two people; the same cake phrase twice is one cake.
        {"image_id": 1, "caption_index": 0, "caption": "", "parser": "rules",
         "triplets": [_triplet("the bride", "bride", "cut", "a cake", "cake"),
                      _triplet("the groom", "groom", "cut", "a cake", "cake")]},
        {"image_id": 1, "caption_index": 1, "caption": "", "parser": "rules",
         "triplets": [_triplet("two people", "people", "cut", "a cake", "cake")]},
        {"image_id": 1, "caption_index": 2, "caption": "", "parser": "rules",
         "triplets": [_triplet("a woman", "woman", "cut", "a cake", "cake")]},
    ]
    rows = run_match({"ingest": ingest, "parse": parse}, RunConfig()).rows
    (proposal_row,) = rows[0]["class_proposals"]
    assert (proposal_row["relation"], proposal_row["subject_category"], proposal_row["object_category"],
            proposal_row["n_pairs"]) == ("cut", "person", "cake", 6)
    assert [(m["caption_index"], m["subject_number"], m["subject_count"], m["object_number"], m["object_count"])
            for m in proposal_row["mentions"]] == [
        (0, "plural", 2, "singular", 1), (1, "plural", 2, "singular", 1), (2, "singular", 1, "singular", 1)]
    (proposal,) = image_proposals(rows)
    assert proposal.subject == EntityNumber("plural", 2) and proposal.object == EntityNumber("singular", 1)
    assert len(proposal.pairs) == 6


def test_match_rows_without_class_proposals_mean_number_unknown() -> None:
    """MATCH rows written before class_proposals existed read back with it null."""
    chunk = {"image_id": 1, "chunk_index": 0, "relation_texts": ["ride"], "class_proposals": None,
             "pairs": [{"subject_id": 1, "object_id": 2, "subject_category": "person", "object_category": "horse",
                        "proposals": [{"relation": "ride", "caption_indices": [0]}]}]}
    (proposal,) = image_proposals([chunk])
    assert proposal.subject == UNKNOWN and proposal.object == UNKNOWN and proposal.pairs == [(1, 2)]
