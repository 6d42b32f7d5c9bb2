"""Tag stage: tagger registry, greedy baseline, η, merging, provenance and batching."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pyarrow as pa
import pytest

import stages.tag as tag_stage
from pipeline.config import RunConfig, TagConfig
from pipeline.contracts import ErrorRow, Row, StageError
from stages.match import run_match
from stages.tag import run_tag
from stages.taggers import ScoredRelation, Tagger, TaggerResult, build_tagger
from stages.taggers.greedy import GreedyTagger, box_iou
from storage.schemas import MATCH, TAG

ROOT = Path("/nonexistent-image-root")


def _image(image_id: int, boxes: dict[int, tuple[str, tuple[float, float, float, float]]]) -> Row:
    return {
        "image_id": image_id, "file_name": f"{image_id}.jpg", "width": 100, "height": 100, "dataset": "test",
        "data_split": "train",
        "objects": [
            {"object_id": oid, "category_id": 1, "category": cat, "x": x, "y": y, "w": w, "h": h}
            for oid, (cat, (x, y, w, h)) in boxes.items()
        ],
    }


def _pair(s: int, o: int, proposals: dict[str, list[int]], sc: str = "person", oc: str = "horse") -> Row:
    return {"subject_id": s, "object_id": o, "subject_category": sc, "object_category": oc,
            "proposals": [{"relation": r, "caption_indices": c} for r, c in sorted(proposals.items())]}


def _chunk(image_id: int, pairs: list[Row], texts: list[str], index: int = 0) -> Row:
    return {"image_id": image_id, "chunk_index": index, "relation_texts": texts, "pairs": pairs}


class ScriptedTagger(Tagger):
    """Returns fixed scores and records how it was called."""

    name = "scripted"
    needs_pixels = False

    def __init__(self, scores: list[ScoredRelation], errors: list[ErrorRow] | None = None) -> None:
        self.scores, self.errors, self.calls = scores, errors or [], []

    def tag(self, chunks: list[Row], images: dict[int, Row], image_root: Path) -> TaggerResult:
        self.calls.append(([(c["image_id"], c["chunk_index"]) for c in chunks], sorted(images), image_root))
        ids = set(images)
        return TaggerResult([s for s in self.scores if s.image_id in ids],
                            [e for e in self.errors if e.image_id in ids])


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch):
    def install(tagger: Tagger) -> Tagger:
        monkeypatch.setattr(tag_stage, "build_tagger", lambda tag_cfg: tagger)
        return tagger

    return install


# -- registry ---------------------------------------------------------------------------------


def test_build_tagger_greedy_is_cached_per_config() -> None:
    a = build_tagger(TagConfig(tagger="greedy"))
    assert isinstance(a, GreedyTagger) and a.name == "greedy"
    assert build_tagger(TagConfig(tagger="greedy")) is a
    assert build_tagger(TagConfig(tagger="greedy", require_overlap=True)) is not a


def test_every_registered_tagger_builds_and_layout_is_the_default() -> None:
    assert TagConfig().tagger == "layout"
    for name in ("layout", "greedy", "greedy-all", "nearest"):
        assert build_tagger(TagConfig(tagger=name)).name == name


def test_build_tagger_imports_rtagger_lazily(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    built = []

    class FakeRTagger(Tagger):
        name = "rtagger"

        def __init__(self, tag_cfg: TagConfig) -> None:
            built.append(tag_cfg)

        def tag(self, chunks, images, image_root):  # pragma: no cover - never called here
            return TaggerResult()

    module = types.ModuleType("stages.taggers.rtagger")
    module.RTagger = FakeRTagger
    monkeypatch.setitem(sys.modules, "stages.taggers.rtagger", module)
    cfg = TagConfig(tagger="rtagger", checkpoint=tmp_path / "ckpt.pth", eta=0.3)
    tagger = build_tagger(cfg)
    assert isinstance(tagger, FakeRTagger)
    assert built == [cfg]


# -- greedy -----------------------------------------------------------------------------------


def test_box_iou() -> None:
    a = {"x": 0, "y": 0, "w": 10, "h": 10}
    assert box_iou(a, a) == 1.0
    assert box_iou(a, {"x": 5, "y": 0, "w": 10, "h": 10}) == pytest.approx(50 / 150)
    assert box_iou(a, {"x": 10, "y": 0, "w": 5, "h": 5}) == 0.0  # touching edges do not overlap
    assert box_iou(a, {"x": 3, "y": 3, "w": 0, "h": 0}) == 0.0


def test_greedy_all_assigns_every_proposal_with_confidence_one() -> None:
    ingest = [_image(1, {1: ("person", (0, 0, 10, 10)), 2: ("horse", (5, 5, 10, 10)), 3: ("horse", (50, 50, 5, 5))})]
    match = [_chunk(1, [_pair(1, 2, {"ride": [0, 2]}), _pair(1, 3, {"ride": [0, 2], "feed": [1]})],
                    ["eat", "feed", "ride"])]
    out = run_tag({"ingest": ingest, "match": match}, RunConfig(tag={"tagger": "greedy-all"}), image_root=ROOT)
    assert out.errors == []
    (row,) = out.rows
    assert (row["image_id"], row["tagger"], row["eta"], row["n_pairs"]) == (1, "greedy-all", 0.2, 2)
    assert [(r["subject_id"], r["object_id"], r["predicate"], r["confidence"], r["caption_indices"])
            for r in row["relationships"]] == [(1, 2, "ride", 1.0, [0, 2]), (1, 3, "feed", 1.0, [1]),
                                               (1, 3, "ride", 1.0, [0, 2])]
    pa.Table.from_pylist(out.rows, schema=TAG)

    overlap = run_tag({"ingest": ingest, "match": match},
                      RunConfig(tag={"tagger": "greedy-all", "require_overlap": True}), image_root=ROOT)
    assert [(r["subject_id"], r["object_id"]) for r in overlap.rows[0]["relationships"]] == [(1, 2)]
    assert overlap.rows[0]["n_pairs"] == 2


def test_greedy_overlap_reports_boxes_missing_from_ingest() -> None:
    ingest = [_image(1, {1: ("person", (0, 0, 10, 10))})]
    match = [_chunk(1, [_pair(1, 99, {"ride": [0]})], ["ride"])]
    out = run_tag({"ingest": ingest, "match": match}, RunConfig(tag={"require_overlap": True}), image_root=ROOT)
    assert out.rows == []
    assert [(e.image_id, e.stage, e.reason) for e in out.errors] == [(1, "tag", "unknown_object")]


def test_eta_is_strict() -> None:
    ingest = [_image(1, {1: ("person", (0, 0, 10, 10)), 2: ("horse", (5, 5, 10, 10))})]
    match = [_chunk(1, [_pair(1, 2, {"ride": [0]})], ["ride"])]
    at_one = run_tag({"ingest": ingest, "match": match}, RunConfig(tag={"tagger": "greedy", "eta": 1.0}),
                     image_root=ROOT)
    assert at_one.rows[0]["relationships"] == [] and at_one.rows[0]["eta"] == 1.0
    below = run_tag({"ingest": ingest, "match": match}, RunConfig(tag={"tagger": "greedy", "eta": 0.99}),
                    image_root=ROOT)
    assert len(below.rows[0]["relationships"]) == 1


# -- merging, η and provenance with scripted scores -------------------------------------------------


def test_merge_dedup_eta_and_provenance(scripted) -> None:
    ingest = [_image(1, {1: ("person", (0, 0, 1, 1)), 2: ("horse", (0, 0, 1, 1)), 3: ("horse", (0, 0, 1, 1))})]
    match = [
        _chunk(1, [_pair(1, 2, {"ride": [0, 3]})], ["feed", "ride", "watch"], index=0),
        _chunk(1, [_pair(1, 3, {"ride": [1], "feed": [2]})], ["feed", "ride", "watch"], index=1),
    ]
    scripted(ScriptedTagger([
        ScoredRelation(1, 1, 2, "ride", 0.5),
        ScoredRelation(1, 1, 2, "ride", 0.9),  # duplicate: the max is kept
        ScoredRelation(1, 1, 2, "feed", 0.6),  # not proposed for (1, 2): captions mentioning "feed" anywhere
        ScoredRelation(1, 1, 3, "ride", 0.2),  # exactly η: dropped
        ScoredRelation(1, 1, 3, "feed", 0.2000001),
        ScoredRelation(1, 1, 3, "watch", 0.7),  # in T but proposed by no matched caption
    ]))
    out = run_tag({"ingest": ingest, "match": match}, RunConfig(tag={"eta": 0.2}), image_root=ROOT)
    (row,) = out.rows
    assert row["tagger"] == "scripted" and row["n_pairs"] == 2
    assert [(r["subject_id"], r["object_id"], r["predicate"], r["confidence"], r["caption_indices"])
            for r in row["relationships"]] == [
        (1, 2, "ride", 0.9, [0, 3]),
        (1, 3, "watch", 0.7, []),
        (1, 2, "feed", 0.6, [2]),
        (1, 3, "feed", 0.2000001, [2]),
    ]
    pa.Table.from_pylist(out.rows, schema=TAG)


def test_batches_keep_an_images_chunks_together(scripted) -> None:
    ingest = [_image(i, {1: ("person", (0, 0, 1, 1)), 2: ("horse", (0, 0, 1, 1))}) for i in range(1, 6)]
    match = [_chunk(i, [_pair(1, 2, {"ride": [0]})], ["ride"], index=k) for i in (5, 3, 1, 4, 2) for k in (1, 0)]
    tagger = scripted(ScriptedTagger([]))
    out = run_tag({"ingest": ingest, "match": match}, RunConfig(tag={"batch_size": 2}), image_root=ROOT)
    assert [call[1] for call in tagger.calls] == [[1, 2], [3, 4], [5]]
    assert tagger.calls[0][0] == [(1, 0), (1, 1), (2, 0), (2, 1)]
    assert all(call[2] == ROOT for call in tagger.calls)
    assert [r["image_id"] for r in out.rows] == [1, 2, 3, 4, 5]
    assert all(r["relationships"] == [] and r["n_pairs"] == 1 for r in out.rows)


def test_tagger_errors_and_unknown_images(scripted) -> None:
    ingest = [_image(i, {1: ("person", (0, 0, 1, 1)), 2: ("horse", (0, 0, 1, 1))}) for i in (1, 2)]
    match = [_chunk(i, [_pair(1, 2, {"ride": [0]})], ["ride"]) for i in (1, 2, 9)]
    scripted(ScriptedTagger([ScoredRelation(1, 1, 2, "ride", 0.8), ScoredRelation(2, 1, 2, "ride", 0.8)],
                            [ErrorRow(2, "tag", "corrupt_image", "2.jpg: truncated")]))
    out = run_tag({"ingest": ingest, "match": match}, RunConfig(), image_root=ROOT)
    assert [r["image_id"] for r in out.rows] == [1]
    assert sorted((e.image_id, e.reason) for e in out.errors) == [(2, "corrupt_image"), (9, "unknown_image")]


@pytest.mark.parametrize("bad", [ScoredRelation(1, 2, 1, "ride", 0.9), ScoredRelation(1, 1, 2, "kick", 0.9),
                                 ScoredRelation(7, 1, 2, "ride", 0.9)])
def test_scores_outside_the_candidates_are_tagger_bugs(scripted, bad: ScoredRelation) -> None:
    ingest = [_image(1, {1: ("person", (0, 0, 1, 1)), 2: ("horse", (0, 0, 1, 1))})]
    match = [_chunk(1, [_pair(1, 2, {"ride": [0]})], ["ride"])]

    class Rogue(ScriptedTagger):
        def tag(self, chunks, images, image_root):
            return TaggerResult([bad])

    scripted(Rogue([]))
    with pytest.raises(StageError):
        run_tag({"ingest": ingest, "match": match}, RunConfig(), image_root=ROOT)


def test_pixel_taggers_get_the_dataset_image_root(scripted, monkeypatch: pytest.MonkeyPatch) -> None:
    import pipeline.datasets

    tagger = ScriptedTagger([])
    tagger.needs_pixels = True
    scripted(tagger)
    monkeypatch.setattr(pipeline.datasets, "image_root", lambda ds: Path("/data/images") / ds.kind)
    ingest = [_image(1, {1: ("person", (0, 0, 1, 1)), 2: ("horse", (0, 0, 1, 1))})]
    match = [_chunk(1, [_pair(1, 2, {"ride": [0]})], ["ride"])]
    run_tag({"ingest": ingest, "match": match}, RunConfig())
    assert tagger.calls[0][2] == Path("/data/images/demo")


# -- match -> tag --------------------------------------------------------------------------------


def test_match_then_greedy_tag_end_to_end() -> None:
    def triplet(s: str, sh: str, rel: str, o: str, oh: str) -> dict:
        return {"subject": s, "subject_head": sh, "relation": rel, "relation_lemma": rel,
                "object": o, "object_head": oh}

    ingest = [_image(3, {30: ("person", (0, 0, 20, 40)), 31: ("bicycle", (0, 20, 30, 20)),
                         32: ("bicycle", (80, 80, 10, 10))})]
    parse = [
        {"image_id": 3, "caption_index": 0, "caption": "", "parser": "rules",
         "triplets": [triplet("a man", "man", "ride", "a bike", "bike")]},
        {"image_id": 3, "caption_index": 1, "caption": "", "parser": "rules",
         "triplets": [triplet("a cyclist", "cyclist", "ride", "bicycles", "bicycle"),
                      triplet("a man", "man", "wear", "a helmet", "helmet")]},
    ]
    cfg = RunConfig(tag={"tagger": "greedy-all", "require_overlap": True})
    matched = run_match({"ingest": ingest, "parse": parse}, cfg)
    out = run_tag({"ingest": ingest, "match": matched.rows}, cfg, image_root=ROOT)
    (row,) = out.rows
    assert row["n_pairs"] == 2
    assert row["relationships"] == [
        {"subject_id": 30, "object_id": 31, "predicate": "ride", "confidence": 1.0, "caption_indices": [0, 1],
         "proposal_index": 0}
    ]
    assert row["class_proposals"] == [{"relation": "ride", "subject_category": "person", "object_category": "bicycle",
                                       "n_candidates": 2, "n_tagged": 1, "n_capped": 0}]
    # "a man" (singular) and "bicycles" (plural) travelled from the captions through match.
    assert matched.rows[0]["class_proposals"][0]["mentions"] == [
        {"caption_index": 0, "subject_number": "singular", "subject_count": 1, "object_number": "singular",
         "object_count": 1},
        {"caption_index": 1, "subject_number": "singular", "subject_count": 1, "object_number": "plural",
         "object_count": None},
    ]
    pa.Table.from_pylist(matched.rows, schema=MATCH)


def test_relation_mentioned_only_by_unmatched_triplets_keeps_its_captions(scripted) -> None:
    """"watch" came from caption 4, whose triplet matched no boxes: provenance still names it."""
    ingest = [_image(1, {1: ("person", (0, 0, 1, 1)), 2: ("horse", (0, 0, 1, 1))})]
    chunk = _chunk(1, [_pair(1, 2, {"ride": [0]})], ["ride", "watch"])
    chunk["relation_captions"] = [{"relation": "ride", "caption_indices": [0]},
                                  {"relation": "watch", "caption_indices": [4]}]
    scripted(ScriptedTagger([ScoredRelation(1, 1, 2, "watch", 0.8)]))
    out = run_tag({"ingest": ingest, "match": [chunk]}, RunConfig(), image_root=ROOT)
    assert out.rows[0]["relationships"][0]["caption_indices"] == [4]
