"""The learning check as a benchmark: loss curves and training-triplet recall on the demo and real COCO.

    .venv/bin/python bench/overfit.py                          # demo photos (labelled here), tiny preset
    .venv/bin/python bench/overfit.py --coco ../shared/data/coco-mini --images 8
    .venv/bin/python bench/overfit.py --run runs/coco-blip --images 8 --preset small --steps 500

Each run trains on the first N images (with relations) of a shard run with
augmentation off and reports, per loss term, the curve and the triplet
recall@10/@100 of the training triplets (see ``stages.train.overfit``). With
``--coco DIR`` the COCO folder (``annotations/instances_train2017.json``,
``captions_train2017.json``, ``train2017/``) is labelled first by the factory
itself: human captions as the captioner (``oracle``), the rule parser and
the greedy tagger.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stages.train.overfit import overfit_check  # noqa: E402


def label_coco(coco: Path, output: Path, max_images: int | None = None) -> Path:
    """``coco`` labelled by the pipeline with its human captions; returns the run directory."""
    from pipeline.config import load_config
    from pipeline.label import run_label

    annotations = coco / "annotations"
    cfg = load_config({
        "name": "coco-oracle", "output": str(output), "executor": "local", "fsync": False,
        "dataset": {"kind": "coco", "annotations": str(annotations / "instances_train2017.json"),
                    "images": str(coco / "train2017"), **({"max_images": max_images} if max_images else {})},
        "caption": {"backend": "oracle", "n_captions": 5,
                    "captions_file": str(annotations / "captions_train2017.json")},
        "parse": {"parser": "rules"},
        "tag": {"tagger": "greedy", "eta": 0.2},
    })
    run_label(cfg)
    return cfg.run_dir


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--run", type=Path, help="an existing shard run")
    source.add_argument("--coco", type=Path, help="a COCO folder to label first (oracle captions)")
    parser.add_argument("--image-root", type=Path, help="image root of --run, when its manifest's is not here")
    parser.add_argument("--images", type=int, default=None, help="images to train on (default: 3 demo, 8 else)")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--preset", default="tiny", choices=["tiny", "small", "full"])
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--scale", type=float, default=0.25, help="image size scale (0.25: short side 200)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, help="also write the report here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="relfactory-overfit-") as tmp:
        work = Path(tmp)
        if args.run is not None:
            run, images = args.run, args.images or 8
        elif args.coco is not None:
            run, images = label_coco(args.coco, work / "runs"), args.images or 8
            # The run's manifest keeps no absolute path outside the output folder.
            args.image_root = args.image_root or args.coco / "train2017"
        else:
            from tests.train.shards import label_demo

            run, images = label_demo(work / "labelled"), args.images or 3
        report = overfit_check(run, work / "train", images=images, steps=args.steps, preset=args.preset, lr=args.lr,
                               image_root=args.image_root, augment_scale=args.scale, device=args.device)
    print(report.format(), flush=True)
    if args.json:
        data = {**report.to_dict(), "machine": {"python": platform.python_version(), "torch": torch.__version__,
                                                "threads": torch.get_num_threads()}}
        args.json.write_text(json.dumps(data, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
