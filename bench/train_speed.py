"""Training throughput (images/s).

    .venv/bin/python bench/train_speed.py                 # CPU, tiny config, demo shards
    .venv/bin/python bench/train_speed.py --device cuda   # GPU, tiny and (optionally) full config

Steps of real training (augmentation, LSE, RPL with MiniLM, RQL, AdamW) on
the bundled demo photos, labelled first by the factory itself (oracle
captions, rule parser, greedy tagger), with the first step left out as
warm-up; images per second. Whether the model *learns* is
``bench/overfit.py``'s question.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stages.train.config import load_train_config  # noqa: E402
from stages.train.engine import train  # noqa: E402
from tests.train.shards import label_demo  # noqa: E402


# The full model's architecture with random weights: no download, same compute. Mean
# pooling: a random encoder's pooler gives every label text the same vector.
FULL_OFFLINE = {"text_encoder_config": {"model_type": "roberta", "hidden_size": 768, "num_hidden_layers": 12,
                                        "num_attention_heads": 12, "intermediate_size": 3072,
                                        "max_position_embeddings": 514, "type_vocab_size": 1},
                "tokenizer": "builtin:char", "text_pooling": "mean"}


def throughput(work: Path, labelled: Path, device: str, preset: str, batch: int, steps: int, scale: float,
               workers: int) -> dict:
    run = labelled
    cfg = load_train_config({"preset": preset, "sources": [{"path": str(run), "weight": 4.0}],
                             "model": FULL_OFFLINE if preset == "full" else {},
                             "output": str(work / f"speed-{preset}-{device}"), "global_batch": batch,
                             "max_steps": steps, "device": device, "num_workers": workers,
                             "augment_scale": scale, "checkpoint_every_epochs": 10_000, "resume": False,
                             "keep_epoch_checkpoints": False})
    started = time.perf_counter()
    result = train(cfg)
    return {"preset": preset, "device": device, "global_batch": batch, "steps": result.step,
            "augment_scale": scale, "images_per_second": round(result.images_per_second, 3),
            "seconds": round(time.perf_counter() - started, 1), "final_loss": round(result.final_loss, 3)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=20, help="throughput steps")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--scale", type=float, default=0.25, help="augmentation size scale for the tiny model")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--full", action="store_true", help="also time the full-size model (GPU)")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    results: dict = {"machine": {"python": platform.python_version(), "torch": torch.__version__,
                                 "threads": torch.get_num_threads(),
                                 "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}}
    with tempfile.TemporaryDirectory(prefix="relfactory-bench-") as tmp:
        work = Path(tmp)
        labelled = label_demo(work / "labelled")  # the factory's own shards of the demo photos
        results["tiny"] = throughput(work, labelled, args.device, "tiny", args.batch, args.steps, args.scale,
                                     args.workers)
        print(json.dumps(results["tiny"]), flush=True)
        if args.full:
            results["full"] = throughput(work, labelled, args.device, "full", args.batch, args.steps, 1.0, args.workers)
            print(json.dumps(results["full"]), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
