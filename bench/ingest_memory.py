"""Peak memory and time of ingest on a synthetic COCO-format dataset, streamed vs in memory.

    .venv/bin/python bench/ingest_memory.py [--images 100000] [--boxes-per-image 15]

Writes an annotation file (and empty image files, which ingest only stats) to a
temp folder, then ingests it in a fresh process twice: reading the JSON with
ijson (the path for files over 256 MB, i.e. Objects365) and loading it whole.
Peak RSS is the ingest process's high-water resident set size.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def make_dataset(folder: Path, n_images: int, boxes_per_image: int) -> Path:
    rng = random.Random(0)
    images_dir = folder / "images"
    images_dir.mkdir()
    images, annotations = [], []
    for image_id in range(1, n_images + 1):
        name = f"{image_id:08d}.jpg"
        (images_dir / name).touch()
        images.append({"id": image_id, "file_name": name, "width": 640, "height": 480})
        for _ in range(boxes_per_image):
            x, y = rng.uniform(0, 600), rng.uniform(0, 440)
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": rng.randint(1, 80),
                                "bbox": [round(x, 2), round(y, 2), 30.5, 20.25], "area": 617.6, "iscrowd": 0})
    categories = [{"id": i, "name": f"class {i}"} for i in range(1, 81)]
    (folder / "captions.json").write_text('{"annotations": []}')
    path = folder / "instances.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return path


def peak_rss_mb() -> float:
    """This process's high-water RSS (VmHWM; unlike ru_maxrss it does not carry over from the forking parent)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(annotations: Path, stream: bool) -> None:
    import pipeline.annotation_source
    from pipeline.config import load_config
    from pipeline.runner import plan_run

    pipeline.annotation_source.STREAM_BYTES = 0 if stream else 1 << 62
    cfg = load_config({"name": "ingest", "output": str(annotations.parent / f"runs-{stream}"), "part_size": 256,
                       "executor": "local", "fsync": False, "reuse_runs": False,
                       "dataset": {"kind": "coco-format", "annotations": str(annotations),
                                   "images": str(annotations.parent / "images")},
                       "caption": {"backend": "oracle", "captions_file": str(annotations.parent / "captions.json")}})
    started = time.perf_counter()
    plan = plan_run(cfg)
    seconds = time.perf_counter() - started
    peak_mb = peak_rss_mb()
    print(json.dumps({"stream": stream, "seconds": seconds, "peak_mb": peak_mb, "parts": plan.n_parts}))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--boxes-per-image", type=int, default=15)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--stream", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(Path(args.child), args.stream)
        return
    with tempfile.TemporaryDirectory(prefix="relfactory-ingest-") as tmp:
        annotations = make_dataset(Path(tmp), args.images, args.boxes_per_image)
        size_mb = annotations.stat().st_size / 2**20
        print(f"{args.images} images, {args.images * args.boxes_per_image} boxes, annotation file {size_mb:.0f} MB")
        for stream in (True, False):
            cmd = [sys.executable, __file__, "--child", str(annotations)] + (["--stream"] if stream else [])
            out = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.splitlines()[-1])
            label = "streamed (ijson)" if stream else "loaded whole   "
            print(f"  {label}: peak RSS {out['peak_mb']:7.0f} MB, {out['seconds']:6.1f} s, {out['parts']} parts")


if __name__ == "__main__":
    main()
