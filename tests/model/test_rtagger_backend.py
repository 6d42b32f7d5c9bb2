"""The ``rtagger`` backend of the tag stage, with a tiny checkpoint and synthetic images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import torch
from PIL import Image

from model.checkpoint import save_checkpoint
from pipeline.config import RunConfig, TagConfig
from stages.tag import run_tag
from stages.taggers.rtagger import RTagger, resolve_device
from storage.schemas import TAG


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory, tiny_models: dict) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "tagger.pt"
    # Small images keep the tiny model fast; the real default is 800 / 1333.
    return save_checkpoint(path, tiny_models["rtagger"], {"entity_labels": ["person", "horse"],
                                                          "image_min_size": 64, "image_max_size": 96})


def _image_row(image_id: int, objects: dict[int, tuple[str, tuple[float, float, float, float]]]) -> dict:
    return {"image_id": image_id, "file_name": f"{image_id}.png", "width": 120, "height": 90, "dataset": "test",
            "data_split": "train",
            "objects": [{"object_id": oid, "category_id": 1, "category": cat, "x": x, "y": y, "w": w, "h": h}
                        for oid, (cat, (x, y, w, h)) in objects.items()]}


def _pair(s: int, o: int, relation: str) -> dict:
    return {"subject_id": s, "object_id": o, "subject_category": "a", "object_category": "b",
            "proposals": [{"relation": relation, "caption_indices": [0]}]}


@pytest.fixture()
def inputs(tmp_path: Path) -> tuple[dict, Path]:
    rng = np.random.default_rng(0)
    for image_id in (1, 2):
        Image.fromarray(rng.integers(0, 255, (90, 120, 3), dtype=np.uint8)).save(tmp_path / f"{image_id}.png")
    (tmp_path / "3.png").write_bytes(b"not an image")
    objects = {10: ("person", (10, 10, 40, 60)), 11: ("horse", (40, 30, 70, 50)), 12: ("dog", (90, 60, 20, 20))}
    ingest = [_image_row(1, objects), _image_row(2, objects), _image_row(3, objects)]
    texts = ["feed", "ride", "walk with"]
    # 4 distinct pairs, repeated across two chunks of image 1: each is scored once.
    pairs = [_pair(10, 11, "ride"), _pair(10, 12, "walk with"), _pair(11, 12, "feed"), _pair(12, 10, "feed")] * 3
    match = [
        {"image_id": 1, "chunk_index": 0, "relation_texts": texts, "pairs": pairs[:6]},
        {"image_id": 1, "chunk_index": 1, "relation_texts": texts, "pairs": pairs[6:]},
        {"image_id": 2, "chunk_index": 0, "relation_texts": texts[:2], "pairs": pairs[:2]},
        {"image_id": 3, "chunk_index": 0, "relation_texts": texts, "pairs": pairs[:1]},
    ]
    return {"ingest": ingest, "match": match}, tmp_path


def test_backend_scores_every_pair_against_every_text(checkpoint: Path, inputs: tuple[dict, Path]) -> None:
    data, root = inputs
    tagger = RTagger(TagConfig(tagger="rtagger", checkpoint=checkpoint, device="auto", batch_size=2))
    images = {row["image_id"]: row for row in data["ingest"]}
    result = tagger.tag(data["match"], images, root)
    assert [(e.image_id, e.stage, e.reason) for e in result.errors] == [(3, "tag", "corrupt_image")]
    keys = [(s.image_id, s.subject_id, s.object_id, s.predicate) for s in result.scores]
    assert len(keys) == len(set(keys)) == 4 * 3 + 2 * 2
    assert all(0.0 <= s.confidence <= 1.0 for s in result.scores)
    again = tagger.tag(data["match"], images, root)
    assert again.scores == result.scores  # deterministic


def test_tag_stage_with_rtagger_writes_tag_rows(checkpoint: Path, inputs: tuple[dict, Path]) -> None:
    data, root = inputs
    cfg = RunConfig(tag={"tagger": "rtagger", "checkpoint": str(checkpoint), "eta": 0.0,
                         "confidence": "relation-only", "batch_size": 2, "device": "cpu"})
    out = run_tag(data, cfg, image_root=root)
    assert [row["image_id"] for row in out.rows] == [1, 2]
    assert [e.image_id for e in out.errors] == [3]
    assert out.rows[0]["tagger"] == "rtagger" and out.rows[0]["n_pairs"] == 4
    assert len(out.rows[0]["relationships"]) == 12
    pa.Table.from_pylist(out.rows, schema=TAG)
    strict = run_tag(data, cfg.model_copy(update={"tag": cfg.tag.model_copy(update={"eta": 0.999})}), image_root=root)
    assert all(row["relationships"] == [] for row in strict.rows)


def test_missing_checkpoint_is_an_infrastructure_error(tmp_path: Path, inputs: tuple[dict, Path]) -> None:
    data, root = inputs
    tagger = RTagger(TagConfig(tagger="rtagger", checkpoint=tmp_path / "missing.pt"))
    with pytest.raises(FileNotFoundError):
        tagger.tag(data["match"][:1], {1: data["ingest"][0]}, root)


def test_unknown_boxes_become_error_rows(checkpoint: Path, inputs: tuple[dict, Path]) -> None:
    data, root = inputs
    chunk = {"image_id": 1, "chunk_index": 0, "relation_texts": ["ride"], "pairs": [_pair(10, 99, "ride")]}
    result = RTagger(TagConfig(tagger="rtagger", checkpoint=checkpoint)).tag([chunk], {1: data["ingest"][0]}, root)
    assert result.scores == [] and [(e.image_id, e.reason) for e in result.errors] == [(1, "unknown_object")]


def test_auto_device() -> None:
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == "cpu"
