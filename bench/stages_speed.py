"""Throughput of each stage on coco-mini, and Ray scaling (2 workers vs 1).

    .venv/bin/python bench/stages_speed.py [--coco ../shared/data/coco-mini] [--skip-ray]

1. Per-stage images/s: the whole pipeline (oracle captions, rules parser, greedy
   tagger; then a tiny random BLIP captioner as a model-backed caption stage) in
   one process, timing each stage's parts including their Parquet I/O.
2. Scaling: the same model-backed pipeline on Ray with 1 and with 2 workers, each
   in a fresh process, after a warm-up run so workers have loaded their models;
   wall time of the timed run and the speed-up ratio (target >= 1.6x on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def coco_config(coco: Path, output: Path, name: str, captioner: dict, executor: str = "local",
                workers: int = 1, part_size: int = 8) -> dict:
    return {
        "name": name, "output": str(output), "part_size": part_size, "executor": executor, "workers": workers,
        "reuse_runs": False,  # time the work itself, never adopt it from the warm-up run
        "dataset": {"kind": "coco", "annotations": str(coco / "annotations/instances_train2017.json"),
                    "images": str(coco / "train2017")},
        "caption": captioner,
        "parse": {"parser": "rules"},
        "tag": {"tagger": "greedy"},
    }


def tiny_blip_captioner(directory: Path) -> dict:
    from stages.captioners.tiny import save_tiny_blip

    # 384 px input with 16 px patches, like the real BLIP-large, so the vision encoder
    # does realistic work per image (the weights are random and tiny in width).
    model_dir = save_tiny_blip(directory, image_size=384, patch_size=16)
    return {"backend": "blip", "model_id": str(model_dir), "n_captions": 10, "device": "cpu"}


def per_stage(coco: Path, work: Path) -> None:
    import torch

    from pipeline.config import load_config
    from pipeline.label import run_label

    torch.set_num_threads(1)  # the same single core a Ray worker gets

    oracle = {"backend": "oracle", "captions_file": str(coco / "annotations/captions_train2017.json"), "n_captions": 5}
    for label, captioner in (("oracle captions", oracle), ("tiny BLIP, N_cap=10", tiny_blip_captioner(work / "blip"))):
        # Warm-up on 8 images: models load once per process, not part of steady-state speed.
        warm = coco_config(coco, work, f"warm-{len(label)}", captioner)
        warm["dataset"]["max_images"] = 8
        run_label(load_config(warm))
        cfg = load_config(coco_config(coco, work, f"stages-{len(label)}", captioner))
        started = time.perf_counter()
        _, manifest = run_label(cfg)
        wall = time.perf_counter() - started
        images = manifest["ingest"]["images"]
        print(f"\n[{label}] {images} images, wall {wall:.2f} s (incl. ingest and manifest; models warm)")
        for stage, seconds in manifest["this_invocation"]["stage_seconds"].items():
            print(f"  {stage:<8} {seconds:7.3f} s   {images / seconds:9.1f} images/s")


def scaling_child(coco: Path, work: Path, workers: int) -> None:
    """Runs in a fresh process: warm up, then time one full run on `workers` Ray workers."""
    from pipeline.config import load_config
    from pipeline.executors import ensure_ray, run_ray
    from pipeline.label import run_label
    from pipeline.runner import finalize, plan_run

    ensure_ray(None, workers)  # one CPU and one torch thread per worker
    captioner = tiny_blip_captioner(work / "blip")
    run_label(load_config(coco_config(coco, work, f"warm-{workers}", captioner, "ray", workers)))
    cfg = load_config(coco_config(coco, work, f"timed-{workers}", captioner | {"n_captions": 9}, "ray", workers))
    started = time.perf_counter()
    plan = plan_run(cfg)  # ingest + keys: serial driver work
    executing = time.perf_counter()
    summaries = run_ray(plan)
    executed = time.perf_counter()
    finalize(plan, summaries)
    print(json.dumps({"workers": workers, "seconds": time.perf_counter() - started,
                      "execution_seconds": executed - executing}))


def scaling(coco: Path, work: Path) -> None:
    runs = {}
    for workers in (1, 2):
        out = subprocess.run([sys.executable, __file__, "--coco", str(coco), "--child", str(workers),
                              "--work", str(work / f"ray{workers}")], capture_output=True, text=True, check=True)
        runs[workers] = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"  {workers} Ray worker(s): {runs[workers]['seconds']:.2f} s end to end, "
              f"{runs[workers]['execution_seconds']:.2f} s executing parts")
    print(f"  speed-up 2 vs 1: {runs[1]['seconds'] / runs[2]['seconds']:.2f}x end to end, "
          f"{runs[1]['execution_seconds'] / runs[2]['execution_seconds']:.2f}x executing (target >= 1.6x)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--coco", type=Path, default=ROOT.parent / "shared" / "data" / "coco-mini")
    parser.add_argument("--skip-ray", action="store_true")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not args.coco.is_dir():
        sys.exit(f"coco-mini not found at {args.coco}")
    if args.child:
        scaling_child(args.coco, args.work, args.child)
        return
    with tempfile.TemporaryDirectory(prefix="relfactory-bench-") as tmp:
        work = Path(tmp)
        print("== per-stage throughput (one process)")
        per_stage(args.coco, work)
        if not args.skip_ray:
            print("\n== Ray scaling (model-backed pipeline, warm workers)")
            scaling(args.coco, work)


if __name__ == "__main__":
    main()
