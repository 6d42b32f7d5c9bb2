"""Text that JSON allows but storage and parsing do not: lone surrogates, zero-width and bidi controls."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.config import MatchConfig
from pipeline.datasets import DEMO_DIR
from pipeline.label import run_label
from pipeline.row_guard import UNENCODABLE
from pipeline.text_safety import clean_text
from stages.captioners.base import normalise_caption
from stages.captioners.oracle import OracleCaptioner
from stages.vocab import matcher_for
from tests.reliability.helpers import DEMO_IMAGE_IDS, accounting, demo_cfg, error_rows, stage_rows


def _captions_with(tmp_path: Path, image_id: int, text: str) -> Path:
    """The demo's captions with every caption of ``image_id`` replaced by ``text`` (written as JSON escapes)."""
    data = json.loads((DEMO_DIR / "captions.json").read_text())
    for ann in data["annotations"]:
        if ann["image_id"] == image_id:
            ann["caption"] = text
    path = tmp_path / "captions.json"
    path.write_text(json.dumps(data))  # ensure_ascii: a lone surrogate is written as the escape "\ud800"
    return path


def test_a_lone_surrogate_in_a_caption_is_stored_as_a_replacement_character(tmp_path: Path) -> None:
    captions = _captions_with(tmp_path, 2, "a man \ud800 riding a horse")
    assert "\\ud800" in captions.read_text()
    cfg = demo_cfg(tmp_path, caption={"captions_file": str(captions)})
    _, manifest = run_label(cfg)
    assert manifest["stages"]["shard"]["state"] == "complete"
    stored = {r["caption"] for r in stage_rows(cfg.run_dir, "caption") if r["image_id"] == 2}
    assert stored == {"a man \ufffd riding a horse"}
    shards, errors = accounting(cfg.run_dir)
    assert shards | set(errors) >= DEMO_IMAGE_IDS


def test_a_row_that_cannot_be_encoded_becomes_an_error_row_and_the_run_resumes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_caption = OracleCaptioner.caption

    def caption_with_surrogate(self, image_ids, images, seed):
        # A backend that bypasses the caption clean-up: its output reaches the Parquet write as is.
        out = real_caption(self, image_ids, images, seed)
        return [[t + "\udc80" for t in texts] if image_id == 3 else texts for image_id, texts in zip(image_ids, out)]

    monkeypatch.setattr(OracleCaptioner, "caption", caption_with_surrogate)
    cfg = demo_cfg(tmp_path)
    _, manifest = run_label(cfg)
    assert manifest["stages"]["shard"]["state"] == "complete"
    bad = [e for e in error_rows(cfg.run_dir) if e["reason"] == UNENCODABLE]
    assert {e["image_id"] for e in bad} == {3} and all(e["stage"] == "caption" for e in bad)
    assert "surrogates not allowed" in bad[0]["detail"]
    assert {r["image_id"] for r in stage_rows(cfg.run_dir, "caption")} == DEMO_IMAGE_IDS - {3}
    _, again = run_label(cfg)
    assert again["this_invocation"]["parts_computed"] == 0


@pytest.mark.parametrize("raw", ["a \u200bman riding a horse", "a m\u200ban riding a horse",
                                 "a \u202eman\u202c riding a \u2066horse\u2069", "a man\ufeff riding a\u00ad horse"])
def test_invisible_controls_are_removed_at_caption_time(raw: str) -> None:
    assert normalise_caption(raw) == "a man riding a horse"


def test_entities_with_invisible_controls_still_match_their_class() -> None:
    matcher = matcher_for(MatchConfig(), "coco")
    assert matcher.match("a m\u200ban", "m\u200ban") == "person"
    assert matcher.match("the \u200bman\u200d", "\u200bman") == "person"
    assert matcher.match("a ho\u2066rse", "ho\u2066rse") == "horse"


def test_a_zero_width_space_no_longer_hides_the_subject_from_the_parser(tmp_path: Path) -> None:
    captions = _captions_with(tmp_path, 1, "a \u200bman riding a horse")
    cfg = demo_cfg(tmp_path, caption={"captions_file": str(captions)})
    run_label(cfg)
    parsed = [r for r in stage_rows(cfg.run_dir, "parse") if r["image_id"] == 1]
    assert parsed and all(r["caption"] == "a man riding a horse" for r in parsed)
    assert any(t["subject_head"] == "man" for r in parsed for t in r["triplets"])


def test_clean_text_keeps_ordinary_text_and_other_scripts() -> None:
    for text in ("Un homme qui monte à cheval", "一个男人在海滩上骑马", "رجل يركب حصانا", "a 🐶 on a 🛹", "tab\tand\nnewline"):
        assert clean_text(text) == text


def test_hostile_names_in_the_annotations_are_an_error_row_or_cleaned(tmp_path: Path) -> None:
    from pipeline.config import DatasetConfig
    from pipeline.datasets import image_root

    data = json.loads((DEMO_DIR / "annotations.json").read_text())
    data["images"][0]["file_name"] = "astro\ud800naut.png"  # image 1: no file can have this name
    names = {c["id"]: c for c in data["categories"]}
    names[1]["name"] = "\u200bper\u202eson"  # person, with invisible controls
    annotations = tmp_path / "annotations.json"
    annotations.write_text(json.dumps(data))
    images = image_root(DatasetConfig(kind="demo"))
    cfg = demo_cfg(tmp_path, dataset={"kind": "coco-format", "annotations": str(annotations), "images": str(images)})
    _, manifest = run_label(cfg)
    assert manifest["stages"]["shard"]["state"] == "complete"
    ingest_errors = {e["image_id"]: e["reason"] for e in error_rows(cfg.run_dir) if e["stage"] == "ingest"}
    assert ingest_errors.get(1) == "malformed_image_entry"
    categories = {o["category"] for r in stage_rows(cfg.run_dir, "ingest") for o in r["objects"]}
    assert "person" in categories
