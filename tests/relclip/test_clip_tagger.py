"""The ``clip`` tagger (RLIPv2 Tab. 5 baseline) on a tiny random CLIP saved to disk."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

from model.relclip.clip_encoder import ClipLoadError, crop, load_clip, union_box
from model.relclip.tiny import save_tiny_clip
from pipeline.config import TagConfig
from pipeline.contracts import Row
from stages.taggers import build_tagger
from stages.taggers.clip import PAIR_PROMPT, RELATION_PROMPT

TEXTS = ["ride", "next to"]


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_clip(tmp_path_factory.mktemp("tiny-clip") / "clip")


@pytest.fixture
def image_root(tmp_path: Path) -> Path:
    gradient = Image.linear_gradient("L").resize((120, 80)).convert("RGB")
    gradient.save(tmp_path / "1.png")
    return tmp_path


def _inputs() -> tuple[list[Row], dict[int, Row]]:
    objects = [  # person and horse overlap; the kite is apart from both
        {"object_id": 1, "category_id": 1, "category": "person", "x": 10, "y": 10, "w": 40, "h": 50},
        {"object_id": 2, "category_id": 19, "category": "horse", "x": 30, "y": 20, "w": 50, "h": 40},
        {"object_id": 3, "category_id": 38, "category": "kite", "x": 90, "y": 0, "w": 20, "h": 15},
    ]
    image = {"image_id": 1, "file_name": "1.png", "width": 120, "height": 80, "objects": objects}
    pairs = [{"subject_id": 1, "object_id": 2, "proposals": [{"relation": "ride", "caption_indices": [0]}]},
             {"subject_id": 1, "object_id": 3, "proposals": [{"relation": "next to", "caption_indices": [1]}]}]
    return [{"image_id": 1, "chunk_index": 0, "relation_texts": TEXTS, "pairs": pairs}], {1: image}


def test_scores_are_the_two_prompt_softmax_on_the_union_crop(clip_dir: Path, image_root: Path) -> None:
    chunks, images = _inputs()
    result = build_tagger(TagConfig(tagger="clip", clip_model=str(clip_dir), device="cpu")).tag(
        chunks, images, image_root)
    assert not result.errors
    scores = {(s.subject_id, s.object_id, s.predicate): s.confidence for s in result.scores}
    assert set(scores) == {(1, 2, "ride"), (1, 2, "next to"), (1, 3, "ride"), (1, 3, "next to")}

    # The same number by hand: union box of person and horse, softmax over the two prompts.
    encoder = load_clip(str(clip_dir), "cpu")
    pixels = Image.open(image_root / "1.png").convert("RGB")
    image = encoder.encode_images([crop(pixels, union_box((10, 10, 50, 60), (30, 20, 80, 60)))])[0]
    texts = encoder.encode_texts([RELATION_PROMPT.format(subject="person", relation="ride", object="horse"),
                                  PAIR_PROMPT.format(subject="person", object="horse")])
    expected = torch.softmax(encoder.logit_scale * (texts @ image), dim=0)[0].item()
    assert scores[(1, 2, "ride")] == pytest.approx(expected, abs=1e-5)
    assert all(0.0 < v < 1.0 for v in scores.values())


def test_overlap_prior_scores_only_touching_pairs(clip_dir: Path, image_root: Path) -> None:
    chunks, images = _inputs()
    cfg = TagConfig(tagger="clip", clip_model=str(clip_dir), device="cpu", require_overlap=True)
    result = build_tagger(cfg).tag(chunks, images, image_root)
    assert {(s.subject_id, s.object_id) for s in result.scores} == {(1, 2)}


def test_bad_input_becomes_error_rows(clip_dir: Path, image_root: Path) -> None:
    chunks, images = _inputs()
    tagger = build_tagger(TagConfig(tagger="clip", clip_model=str(clip_dir), device="cpu"))
    images[1] = {**images[1], "file_name": "missing.png"}
    result = tagger.tag(chunks, images, image_root)
    assert [e.reason for e in result.errors] == ["missing_image"] and not result.scores
    chunks[0]["pairs"].append({"subject_id": 1, "object_id": 99, "proposals": []})
    assert [e.reason for e in tagger.tag(chunks, _inputs()[1], image_root).errors] == ["unknown_object"]


def test_a_missing_model_says_how_to_get_it(tmp_path: Path) -> None:
    with pytest.raises(ClipLoadError, match="save_pretrained"):
        load_clip(str(tmp_path), "cpu")


@pytest.mark.slow
def test_clip_tagger_labels_the_demo_end_to_end(clip_dir: Path, tmp_path: Path) -> None:
    from pipeline.cli import main

    code = main(["label", "--dataset-kind", "demo", "--captioner", "oracle", "--tagger", "clip",
                 "--clip-model", str(clip_dir), "--eta", "0.3", "--run", "clip-demo",
                 "--output", str(tmp_path / "runs"), "--orchestrator", "none", "--executor", "local"])
    assert code == 0
    rows = [r for part in sorted((tmp_path / "runs" / "clip-demo" / "tag").glob("part-*.parquet"))
            for r in pq.read_table(part).to_pylist()]
    assert rows and {r["tagger"] for r in rows} == {"clip"}
    confidences = [rel["confidence"] for r in rows for rel in r["relationships"]]
    assert confidences and all(0.3 < c < 1.0 for c in confidences)
    shards = list((tmp_path / "runs" / "clip-demo" / "shard").glob("part-*.parquet"))
    assert shards


def test_pair_assignment_benchmark_runs_the_clip_tagger(clip_dir: Path, image_root: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from bench.tagger_pairs import main as bench_main

    # One image in fredzzhang/hicodet's format: two people, one rides the horse.
    annotations = tmp_path / "hico.json"
    annotations.write_text(json.dumps({
        "objects": ["person", "horse"], "verbs": ["ride", "feed"], "filenames": ["1.png"], "size": [[120, 80]],
        "annotation": [{"boxes_h": [[10, 10, 50, 60], [85, 5, 115, 75]], "boxes_o": [[30, 20, 80, 60]] * 2,
                        "object": [1, 1], "verb": [0, 1]}],
    }))
    assert bench_main(["--annotations", str(annotations), "--taggers", "clip,clip+overlap", "--images",
                       str(image_root), "--clip-model", str(clip_dir), "--device", "cpu", "--eta", "0.0"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith("clip ") and "F1" in line for line in lines)
    assert any(line.startswith("clip+overlap ") for line in lines)


def test_the_clip_tag_stage_asks_ray_for_a_gpu() -> None:
    from pipeline.config import RunConfig
    from pipeline.stage_specs import STAGES

    assert STAGES["tag"].wants_gpu(RunConfig(tag={"tagger": "clip"}))
    assert not STAGES["tag"].wants_gpu(RunConfig(tag={"tagger": "greedy"}))


def test_text_cache_is_bounded_and_answers_stay_the_same(clip_dir: Path) -> None:
    from model.relclip.clip_encoder import ClipEncoder
    from model.relclip.tiny import build_tiny_clip

    model, processor = build_tiny_clip()
    encoder = ClipEncoder(model, processor, "cpu", max_cached_texts=2)
    first = encoder.encode_texts(["a", "b", "c"])
    assert list(encoder._text_cache) == ["b", "c"]
    assert torch.allclose(encoder.encode_texts(["c", "a"]), first[[2, 0]])
    assert list(encoder._text_cache) == ["c", "a"]
