"""The tiny R-Tagger on real COCO pixels and boxes (skipped without ../shared/data)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from model.checkpoint import save_checkpoint
from pipeline.config import TagConfig
from stages.taggers.rtagger import RTagger

pytestmark = pytest.mark.shared_data


def test_tiny_rtagger_scores_real_coco_pairs(shared_data: Path, tmp_path: Path, tiny_models: dict) -> None:
    root = shared_data / "coco-mini"
    coco = json.loads((root / "annotations" / "instances_train2017.json").read_text())
    names = {c["id"]: c["name"] for c in coco["categories"]}
    images = sorted(coco["images"], key=lambda im: im["id"])[:2]
    ingest, chunks = {}, []
    for im in images:
        anns = [a for a in coco["annotations"] if a["image_id"] == im["id"]][:4]
        ingest[im["id"]] = {
            "image_id": im["id"], "file_name": im["file_name"], "width": im["width"], "height": im["height"],
            "objects": [{"object_id": a["id"], "category_id": a["category_id"], "category": names[a["category_id"]],
                         "x": a["bbox"][0], "y": a["bbox"][1], "w": a["bbox"][2], "h": a["bbox"][3]} for a in anns],
        }
        pairs = [{"subject_id": s["id"], "object_id": o["id"], "proposals": []}
                 for s in anns for o in anns if s["id"] != o["id"]]
        chunks.append({"image_id": im["id"], "chunk_index": 0, "relation_texts": ["on", "next to"], "pairs": pairs})
    ckpt = save_checkpoint(tmp_path / "t.pt", tiny_models["rtagger"], {"image_min_size": 96, "image_max_size": 160})
    result = RTagger(TagConfig(tagger="rtagger", checkpoint=ckpt, device="cpu")).tag(chunks, ingest,
                                                                                     root / "train2017")
    assert result.errors == []
    expected = sum(len(c["pairs"]) * 2 for c in chunks)
    assert len(result.scores) == expected > 0
    assert all(0.0 <= s.confidence <= 1.0 for s in result.scores)
