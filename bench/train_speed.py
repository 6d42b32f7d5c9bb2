"""Training throughput (images/s) and an over-fitting check for the tiny model.

    .venv/bin/python bench/train_speed.py                 # CPU, tiny config, demo shards
    .venv/bin/python bench/train_speed.py --device cuda   # GPU, tiny and (optionally) full config
    .venv/bin/python bench/train_speed.py --overfit-steps 400

Two measurements on the bundled demo photos, labelled first by the factory
itself (oracle captions, rule parser, greedy tagger):

* throughput: steps of real training (augmentation, LSE, RPL with MiniLM,
  RQL, AdamW) with the first step left out as warm-up; images per second;
* over-fitting: the tiny model trained on three images without augmentation
  until it recovers their triplets; reports the loss curve and triplet recall
  (subject, relation and object text right, both boxes at IoU >= 0.5) among
  the top-10 and top-100 predictions per image.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from model.checkpoint import load_checkpoint  # noqa: E402
from pipeline.images import load_image  # noqa: E402
from stages.train.config import load_train_config  # noqa: E402
from stages.train.data import TrainDataset, collate  # noqa: E402
from stages.train.engine import train  # noqa: E402
from stages.train.inference import postprocess, triplet_recall  # noqa: E402
from stages.train.sources import ShardSource  # noqa: E402
from stages.train.transforms import AugmentConfig, eval_transform  # noqa: E402
from tests.train.shards import label_demo, read_run_rows, write_demo_run  # noqa: E402


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


def overfit(work: Path, labelled: Path, steps: int, scale: float, lr: float, device: str) -> dict:
    rows = [r for r in read_run_rows(labelled) if r["image_id"] in (1, 2, 3)]
    run = write_demo_run(work / "runs", name="overfit", rows=rows)
    cfg = load_train_config({"preset": "tiny", "sources": [{"path": str(run)}], "output": str(work / "overfit"),
                             "global_batch": 3, "epochs": steps, "augment": False, "augment_scale": scale,
                             "lr": lr, "lr_backbone": lr / 10, "lr_text_encoder": lr / 10, "lr_drop_epochs": [],
                             "checkpoint_every_epochs": steps, "keep_epoch_checkpoints": False, "num_workers": 0,
                             "device": device, "resume": False, "log_every": 1})
    result = train(cfg)
    losses = [row["loss"] for row in result.history]
    model, _ = load_checkpoint(result.checkpoint)
    source = ShardSource(run)
    records = [source.get(p, i) for p, n in enumerate(source.part_sizes) for i in range(n)]
    entities, relations = sorted(source.entity_counts), sorted(source.relation_counts)
    dataset = TrainDataset([source], eval_transform(AugmentConfig().scaled(scale)))
    batch = collate([dataset.prepare(r, load_image(r.image_root, r.file_name), random.Random(0)) for r in records])
    with torch.no_grad():
        outputs = model(batch.images, ([entities] * len(batch), [relations] * len(batch)))
    sizes = [(r.width, r.height) for r in records]
    recall = {}
    for k in (10, 100):
        found, total = triplet_recall(postprocess(outputs, sizes, top_k=k, protocol="all-entities"), records,
                                      entities, relations)
        recall[f"recall@{k}"] = f"{found}/{total}"
    window = max(1, len(losses) // 20)
    return {"steps": len(losses), "loss_start": round(sum(losses[:window]) / window, 3),
            "loss_end": round(sum(losses[-window:]) / window, 3), **recall}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=20, help="throughput steps")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--scale", type=float, default=0.25, help="augmentation size scale for the tiny model")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--full", action="store_true", help="also time the full-size model (GPU)")
    parser.add_argument("--overfit-steps", type=int, default=300, help="0 skips the over-fitting run")
    parser.add_argument("--lr", type=float, default=2e-3)
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
        if args.overfit_steps:
            results["overfit"] = overfit(work, labelled, args.overfit_steps, args.scale, args.lr, args.device)
            print(json.dumps(results["overfit"]), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
