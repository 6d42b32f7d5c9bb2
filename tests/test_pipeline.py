"""End-to-end runs of the labelling pipeline (without Prefect: see test_flows.py)."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from pipeline.config import load_config
from pipeline.datasets import DEMO_DIR
from pipeline.label import run_label
from pipeline.runner import execute_part, plan_run
from pipeline.stage_specs import STAGES, StageSpec
from storage.export import export_rlipv2_json


def demo_cfg(tmp_path, **over):
    data = {"name": "t", "output": str(tmp_path), "part_size": 2, "executor": "local", "fsync": False,
            "dataset": {"kind": "demo"},
            "caption": {"backend": "oracle", "captions_file": str(DEMO_DIR / "captions.json"), "n_captions": 5},
            "tag": {"tagger": "greedy"}}
    for key, value in over.items():
        if isinstance(value, dict):
            data.setdefault(key, {}).update(value)
        else:
            data[key] = value
    return load_config(data)


def shard_rows(run_dir):
    return sorted((r for f in sorted((run_dir / "shard").glob("part-*.parquet"))
                   for r in pq.read_table(f).to_pylist()), key=lambda r: r["image_id"])


def test_demo_run_produces_relations_and_is_idempotent(tmp_path):
    cfg = demo_cfg(tmp_path)
    plan, manifest = run_label(cfg)
    rows = shard_rows(cfg.run_dir)
    assert [r["image_id"] for r in rows] == [1, 2, 3, 4, 5, 6]
    predicates = {(r["image_id"], rel["predicate"]) for r in rows for rel in r["relationships"]}
    assert (3, "on") in predicates or any(p[0] == 3 for p in predicates)
    assert sum(len(r["relationships"]) for r in rows) > 0
    assert all(0.2 < rel["confidence"] <= 1.0 for r in rows for rel in r["relationships"])
    assert manifest["stages"]["shard"]["state"] == "complete"
    assert manifest["this_invocation"]["parts_computed"] == 5 * plan.n_parts

    _, again = run_label(cfg)
    assert again["this_invocation"]["parts_computed"] == 0
    assert shard_rows(cfg.run_dir) == rows


def test_changing_eta_reruns_only_tag_and_shard(tmp_path):
    run_label(demo_cfg(tmp_path))
    _, manifest = run_label(demo_cfg(tmp_path, tag={"eta": 0.5}))
    assert set(manifest["this_invocation"]["parts_computed_by_stage"]) == {"tag", "shard"}


def test_new_captioner_reruns_caption_and_downstream_only(tmp_path):
    run_label(demo_cfg(tmp_path))
    _, manifest = run_label(demo_cfg(tmp_path, caption={"n_captions": 3}))
    assert set(manifest["this_invocation"]["parts_computed_by_stage"]) == {"caption", "parse", "match", "tag", "shard"}
    assert manifest["stages"]["ingest"]["state"] == "complete"


def test_stage_failure_is_retried_then_recorded(tmp_path, monkeypatch):
    calls = {"n": 0}

    def flaky(inputs, cfg):
        calls["n"] += 1
        raise RuntimeError("injected failure")

    cfg = demo_cfg(tmp_path, max_retries=2)
    plan = plan_run(cfg)
    monkeypatch.setitem(STAGES, "caption", StageSpec("caption", ("ingest",), "x:y"))
    monkeypatch.setattr(StageSpec, "load", lambda self: flaky if self.name == "caption" else STAGES[self.name].load())
    summary = execute_part(cfg, "caption", 0, plan.keys)
    assert calls["n"] == 3 and summary["attempts"] == 3 and summary["rows"] == 0
    from pipeline.runner import store_for

    errors = store_for(cfg, "caption", plan.keys["caption"]).read_errors(0)
    assert [(e["image_id"], e["reason"]) for e in errors] == [(1, "stage_failed"), (2, "stage_failed")]
    assert "injected failure" in errors[0]["detail"]


def test_export_rlipv2_json(tmp_path):
    cfg = demo_cfg(tmp_path)
    run_label(cfg)
    dest = tmp_path / "out.json"
    assert export_rlipv2_json(cfg.run_dir, dest) == 6
    entries = json.loads(dest.read_text())
    assert [e["image_id"] for e in entries] == [1, 2, 3, 4, 5, 6]
    ids = [o["object_id"] for e in entries for o in e["objects"]]
    assert ids == list(range(30_000_000, 30_000_000 + len(ids)))  # demo is neither COCO nor Objects365
    first = entries[0]["objects"][0]
    assert set(first) == {"object_id", "x", "y", "w", "h", "names"} and first["names"] == "person"
    rels = [r for e in entries for r in e["relationships"]]
    assert [r["relationship_id"] for r in rels] == list(range(30_000_000, 30_000_000 + len(rels)))
    for e in entries:
        own = {o["object_id"] for o in e["objects"]}
        assert all(r["subject_id"] in own and r["object_id"] in own for r in e["relationships"])


@pytest.mark.shared_data
@pytest.mark.slow
def test_coco_mini_on_ray_accounts_for_every_image(tmp_path, shared_data):
    coco = shared_data / "coco-mini"
    cfg = load_config({
        "name": "coco-mini", "output": str(tmp_path), "part_size": 16, "executor": "ray", "workers": 2,
        "dataset": {"kind": "coco", "annotations": str(coco / "annotations/instances_train2017.json"),
                    "images": str(coco / "train2017")},
        "caption": {"backend": "oracle", "captions_file": str(coco / "annotations/captions_train2017.json"),
                    "n_captions": 5},
        "tag": {"tagger": "greedy"},
    })
    _, manifest = run_label(cfg)
    in_shards = {r["image_id"] for r in shard_rows(cfg.run_dir)}
    errored = {e["image_id"] for stage in ("ingest", "caption")
               for f in (cfg.run_dir / stage / "_errors").glob("*.parquet") for e in pq.read_table(f).to_pylist()}
    all_ids = {img["id"] for img in json.loads((coco / "annotations/instances_train2017.json").read_text())["images"]}
    assert in_shards | errored == all_ids
    assert len(in_shards) == 80
    assert manifest["stages"]["shard"]["rows"] == 80
    assert sum(len(r["relationships"]) for r in shard_rows(cfg.run_dir)) > 50


@pytest.fixture
def crashing_tagger(monkeypatch):
    """Makes every tag part raise; returns a function that restores the real stage."""
    import stages.tag

    real = stages.tag.run_tag

    def broken(inputs, cfg, image_root=None):
        raise RuntimeError("tagger crashed")

    monkeypatch.setattr(stages.tag, "run_tag", broken)
    return lambda: monkeypatch.setattr(stages.tag, "run_tag", real)


def test_image_failed_downstream_leaves_the_shards(tmp_path, crashing_tagger):
    """A tag part that exhausts its retries: its images are error rows, not empty shard rows."""
    cfg = demo_cfg(tmp_path, max_retries=0)
    run_label(cfg)
    assert shard_rows(cfg.run_dir) == []
    errors = [e for f in (cfg.run_dir / "tag" / "_errors").glob("*.parquet") for e in pq.read_table(f).to_pylist()]
    assert {e["image_id"] for e in errors} == {1, 2, 3, 4, 5, 6}
    assert {e["reason"] for e in errors} == {"stage_failed"}


def test_retry_failed_reruns_failed_parts_and_what_follows(tmp_path, crashing_tagger):
    cfg = demo_cfg(tmp_path, max_retries=0)
    run_label(cfg)
    assert shard_rows(cfg.run_dir) == []

    crashing_tagger()  # restore the real tag stage
    _, manifest = run_label(cfg)  # failures are results too: a plain re-run keeps them
    assert manifest["this_invocation"]["parts_computed"] == 0
    _, manifest = run_label(demo_cfg(tmp_path, retry_failed=True))
    assert manifest["this_invocation"]["parts_computed_by_stage"] == {"tag": 3, "shard": 3}
    assert len(shard_rows(cfg.run_dir)) == 6


def test_changed_input_part_uncommits_downstream_parts(tmp_path):
    cfg = demo_cfg(tmp_path)
    plan, _ = run_label(cfg)
    from pipeline.runner import store_for

    # Rewrite parse part 1 with different content under the same key (as a hand edit would).
    parse = store_for(cfg, "parse", plan.keys["parse"])
    rows = parse.read_rows(1)
    rows[0]["triplets"] = []
    parse.write_part(1, rows, [], inputs=parse.marker(1)["inputs"])
    replanned = plan_run(cfg)
    assert replanned.todo["parse"] == [] and replanned.todo["match"] == [1]
    assert replanned.todo["tag"] == [1] and replanned.todo["shard"] == [1]


def test_demo_with_rtagger_backend(tmp_path):
    """The model-backed tagger through the whole pipeline (tiny random R-Tagger checkpoint)."""
    import torch

    from model import RLIPv2Config, build_model, save_checkpoint

    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp_path / "tagger.pt", build_model(RLIPv2Config.tiny("rtagger")).eval(),
                           {"entity_labels": ["person", "cup"], "image_min_size": 64, "image_max_size": 96})
    cfg = demo_cfg(tmp_path, tag={"tagger": "rtagger", "checkpoint": str(ckpt), "eta": 0.0, "device": "cpu"})
    _, manifest = run_label(cfg)
    rows = shard_rows(cfg.run_dir)
    assert len(rows) == 6 and manifest["stages"]["tag"]["errors"] == 0
    rels = [rel for r in rows for rel in r["relationships"]]
    assert rels and all(0.0 < rel["confidence"] <= 1.0 for rel in rels)
    # The R-Tagger scores every candidate pair against every relation text of its image.
    tag_rows = [r for f in sorted((cfg.run_dir / "tag").glob("part-*.parquet")) for r in pq.read_table(f).to_pylist()]
    assert sum(len(r["relationships"]) for r in tag_rows) >= sum(r["n_pairs"] for r in tag_rows)


def test_new_run_adopts_identical_stages_from_earlier_runs(tmp_path):
    run_label(demo_cfg(tmp_path))
    _, manifest = run_label(demo_cfg(tmp_path, name="relabel", tag={"eta": 0.5}))
    assert set(manifest["this_invocation"]["parts_computed_by_stage"]) == {"tag", "shard"}
    assert manifest["stages"]["caption"]["state"] == "complete"
    first, second = tmp_path / "t" / "caption", tmp_path / "relabel" / "caption"
    assert (first / "part-00000.parquet").read_bytes() == (second / "part-00000.parquet").read_bytes()

    _, manifest = run_label(demo_cfg(tmp_path, name="fresh", reuse_runs=False))
    assert manifest["this_invocation"]["parts_computed"] == 15
