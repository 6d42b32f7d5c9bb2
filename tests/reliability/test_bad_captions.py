"""Garbage captions: an error row with its reason, or a parse row, for every caption; never a crash.

Empty and whitespace captions, other scripts, emoji and control characters, a
5,000-character caption and captions that make the parser raise go through the
real parse stage (spaCy), and then through a whole run, where every image must
still be accounted for.
"""

from __future__ import annotations

import json
import re

import pytest
from PIL import Image

from pipeline.config import RunConfig, load_config
from pipeline.label import run_label
from stages.parse import run_parse
from stages.parsers.rules import RulesParser
from tests.reliability.helpers import accounting, error_rows, shard_rows, stage_rows

BOMB_WORD = "kaboom"  # the monkeypatched parser raises on captions containing it

CAPTIONS = {
    "empty": "",
    "whitespace": " \t\n ",
    "french": "Un homme qui monte à cheval sur la plage",
    "chinese": "一个男人在海滩上骑马",
    "arabic": "رجل يركب حصانا على الشاطئ",
    "emoji": "a 🐶 dog 🐕 riding on a 🛹 skateboard 😂😂😂",
    "only_emoji": "🐶🛹😂",
    "zero_width": "a\u200bman\u200d riding\ufeff a horse",
    "control_chars": "a man\x00 riding\x07 a\x1b[31m horse",
    "long_5000": ("a man riding a horse next to a dog on the beach " * 110)[:5000],
    "raises": f"a man holding a {BOMB_WORD} next to a dog",
    "normal": "a man riding a horse next to a dog",
}
EXPECTED_ERRORS = {"empty": "empty_caption", "whitespace": "empty_caption", "long_5000": "caption_too_long",
                   "raises": "parser_exception"}


@pytest.fixture()
def exploding_parser(monkeypatch):
    real_extract = RulesParser.extract

    def extract(self, doc):
        if BOMB_WORD in doc.text:
            raise RecursionError("parser blew up on this caption")
        return real_extract(self, doc)

    monkeypatch.setattr(RulesParser, "extract", extract)


def _caption_rows(captions: dict[str, str]) -> list[dict]:
    return [{"image_id": 7, "caption_index": i, "caption": text, "captioner": "oracle", "model_id": "x",
             "decoding": "{}", "seed": 0} for i, text in enumerate(captions.values())]


def test_every_caption_becomes_a_row_or_an_error_with_its_reason(exploding_parser):
    cfg = RunConfig(parse={"parser": "rules", "batch_size": 4})
    rows_in = _caption_rows(CAPTIONS)
    out = run_parse({"caption": rows_in}, cfg)
    names = list(CAPTIONS)
    parsed = {names[r["caption_index"]]: r for r in out.rows}
    failed = {names[int(re.match(r"caption (\d+):", e.detail).group(1))]: e for e in out.errors}
    assert set(parsed) | set(failed) == set(names) and not set(parsed) & set(failed)
    assert {name: e.reason for name, e in failed.items()} == EXPECTED_ERRORS
    assert "RecursionError" in failed["raises"].detail and "5000 characters" in failed["long_5000"].detail
    assert parsed["normal"]["triplets"], "the rest of the batch still parses"
    assert any(t["relation_lemma"] == "ride" for t in parsed["normal"]["triplets"])
    assert parsed["control_chars"]["caption"] == CAPTIONS["control_chars"], "text is stored as given"


def test_a_long_caption_within_the_limit_parses(exploding_parser):
    cfg = RunConfig(parse={"parser": "rules", "max_caption_chars": 6000})
    out = run_parse({"caption": _caption_rows({"long": CAPTIONS["long_5000"]})}, cfg)
    assert not out.errors and out.rows[0]["triplets"]


def test_the_sng_parser_survives_the_same_garbage():
    cfg = RunConfig(parse={"parser": "sng"})
    captions = {k: v for k, v in CAPTIONS.items() if k != "raises"}
    out = run_parse({"caption": _caption_rows(captions)}, cfg)
    assert len(out.rows) + len(out.errors) == len(captions)
    assert {e.reason for e in out.errors} <= {"empty_caption", "caption_too_long", "parser_exception"}


def test_runs_with_garbage_captions_account_for_every_image(tmp_path, exploding_parser):
    images = tmp_path / "images"
    images.mkdir()
    names = list(CAPTIONS)
    entries, annotations, captions = [], [], []
    for image_id, name in enumerate(names, start=1):
        Image.new("RGB", (40, 30), (120, 20 * image_id % 255, 40)).save(images / f"{name}.png")
        entries.append({"id": image_id, "file_name": f"{name}.png", "width": 40, "height": 30})
        annotations += [{"id": 10 * image_id, "image_id": image_id, "category_id": 1, "bbox": [1, 1, 15, 25]},
                        {"id": 10 * image_id + 1, "image_id": image_id, "category_id": 2, "bbox": [20, 5, 15, 20]}]
        captions.append({"id": image_id, "image_id": image_id, "caption": CAPTIONS[name]})
    (tmp_path / "instances.json").write_text(json.dumps({
        "images": entries, "annotations": annotations,
        "categories": [{"id": 1, "name": "person"}, {"id": 2, "name": "horse"}]}))
    (tmp_path / "captions.json").write_text(json.dumps({"annotations": captions}))
    cfg = load_config({
        "name": "captions", "output": str(tmp_path / "out"), "part_size": 5, "executor": "local", "fsync": False,
        "dataset": {"kind": "coco-format", "annotations": str(tmp_path / "instances.json"), "images": str(images)},
        "caption": {"backend": "oracle", "captions_file": str(tmp_path / "captions.json"), "n_captions": 1},
        "tag": {"tagger": "greedy"},
    })
    _, manifest = run_label(cfg)
    in_shards, reasons = accounting(cfg.run_dir)
    assert in_shards == set(range(1, len(names) + 1)), "captioned images reach the shards, with or without relations"
    for name, reason in EXPECTED_ERRORS.items():
        assert reason in reasons[names.index(name) + 1], name
    assert manifest["stages"]["parse"]["error_reasons"] == {"caption_too_long": 1, "empty_caption": 2,
                                                            "parser_exception": 1}
    relations = {r["image_id"]: r["relationships"] for r in shard_rows(cfg.run_dir)}
    assert relations[names.index("normal") + 1], "a good caption still yields relations"
    assert all(not relations[names.index(n) + 1] for n in EXPECTED_ERRORS), "no relation from an unparsed caption"
    assert len(stage_rows(cfg.run_dir, "parse")) + len([e for e in error_rows(cfg.run_dir) if e["stage"] == "parse"]) \
        == len(names)
