"""The learning check: does the model fit a handful of labelled images?

A model that cannot over-fit eight images will not learn from eight
million. ``overfit_check`` trains on the first N images (with relations) of
a shard run with augmentation off, through the real training loop (LSE,
RPL, RQL, AdamW), then runs the trained model on the same images and
reports, per loss term, the loss curve and the triplet recall@k of the
training triplets: subject, relation and object text right and both boxes
at IoU >= 0.5 among the image's top-k predictions (subjects predicted, not
assumed: the ``all-entities`` protocol of :mod:`stages.train.inference`).

Recall is given against all triplets and against the *reachable* ones: an
image trains on at most ``num_queries`` pairs (its most confident ones) and
its top-k holds at most k triplets, so per image at most
``min(k, triplets of its trained pairs)`` can be found.

    relfactory train --shards runs/coco-oracle --overfit 8 --preset tiny --max-steps 300
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch

from pipeline.images import load_image

from .config import TrainConfig, load_train_config
from .data import TrainDataset, collate, unique_pairs
from .engine import train
from .inference import postprocess, triplet_recall
from .records import Record
from .sources import ShardSource
from .transforms import AugmentConfig, eval_transform

LOSS_TERMS = ("loss", "loss_entity_ce", "loss_relation", "loss_sub_bbox", "loss_obj_bbox", "loss_sub_giou",
              "loss_obj_giou")
RECALL_AT = (10, 100)


@dataclass(frozen=True)
class RecallAt:
    k: int
    found: int
    reachable: int
    total: int

    @property
    def of_reachable(self) -> float:
        return self.found / self.reachable if self.reachable else math.nan


@dataclass
class OverfitReport:
    run: str
    preset: str
    images: int
    steps: int
    seconds: float
    curves: dict[str, list[tuple[int, float]]] = field(default_factory=dict)  # term -> (step, value)
    recall: list[RecallAt] = field(default_factory=list)

    def final(self, term: str) -> float:
        """The term's value averaged over the last 5 % of the steps (one step is noisy)."""
        values = [v for _, v in self.curves.get(term, [])]
        if not values:
            return math.nan
        window = max(1, len(values) // 20)
        return sum(values[-window:]) / window

    def recall_at(self, k: int) -> RecallAt:
        return next(r for r in self.recall if r.k == k)

    def to_dict(self) -> dict[str, Any]:
        return {"run": self.run, "preset": self.preset, "images": self.images, "steps": self.steps,
                "seconds": round(self.seconds, 1),
                "final": {t: round(self.final(t), 4) for t in self.curves},
                "recall": {f"@{r.k}": {"found": r.found, "reachable": r.reachable, "total": r.total}
                           for r in self.recall}}

    def format(self, points: int = 6) -> str:
        """The loss curve of each term at ``points`` evenly spaced steps, then the recall lines."""
        lines = [f"learning check: {self.images} images of {self.run}, preset {self.preset}, {self.steps} steps, "
                 f"{self.seconds:.0f} s"]
        steps = [s for s, _ in next(iter(self.curves.values()), [])]
        if steps:
            picks = sorted({steps[min(len(steps) - 1, round(i * (len(steps) - 1) / (points - 1)))]
                            for i in range(points)})
            lines.append(f"{'step':<16}" + "".join(f"{s:>9}" for s in picks))
            for term, curve in self.curves.items():
                at = dict(curve)
                lines.append(f"{term:<16}" + "".join(f"{at[s]:>9.4f}" for s in picks))
        for r in self.recall:
            lines.append(f"recall@{r.k}: {r.found}/{r.total} training triplets, {r.found}/{r.reachable} reachable "
                         f"({100 * r.of_reachable:.0f} %)")
        return "\n".join(lines)


def overfit_config(run: Path, output: Path, *, images: int, steps: int, preset: str = "tiny", lr: float = 2e-3,
                   image_root: Path | None = None, augment_scale: float = 0.25, device: str = "cpu",
                   seed: int = 42, model: dict[str, Any] | None = None, **overrides: Any) -> TrainConfig:
    """The training config of the check: every image in every step, no augmentation, no schedule."""
    source: dict[str, Any] = {"path": str(run), "max_images": images}
    if image_root is not None:
        source["images"] = str(image_root)
    # Pretrained parts move 10x slower, as in the recipe; randomly initialised ones (every
    # backbone without backbone_weights, tiny's text encoder) have nothing to preserve and
    # learn at the full rate: on 8 COCO images that reaches the same losses in ~60 % of the steps.
    settings = model or {}
    backbone_pretrained = bool(settings.get("backbone_weights"))
    text_pretrained = preset != "tiny" and settings.get("text_encoder_config") is None
    data = {"preset": preset, "sources": [source], "output": str(output), "global_batch": images,
            "epochs": steps, "max_steps": steps, "augment": False, "augment_scale": augment_scale, "lr": lr,
            "lr_backbone": lr / 10 if backbone_pretrained else lr,
            "lr_text_encoder": lr / 10 if text_pretrained else lr, "lr_drop_epochs": [],
            "checkpoint_every_epochs": steps, "keep_epoch_checkpoints": False, "num_workers": 0,
            "device": device, "resume": False, "log_every": 1, "seed": seed, "model": dict(model or {}),
            **overrides}
    return load_train_config(data)


def reachable_triplets(records: Sequence[Record], k: int, num_queries: int) -> int:
    """How many training triplets a model with ``num_queries`` pair slots can show in a top-``k``."""
    total = 0
    for record in records:
        trained = set(unique_pairs(record.relations)[:num_queries])
        in_slots = sum(1 for rel in record.relations if (rel.subject, rel.object) in trained)
        total += min(k, in_slots)
    return total


@torch.no_grad()
def training_recall(model: torch.nn.Module, source: ShardSource, augment_scale: float,
                    ks: Sequence[int] = RECALL_AT, device: str | torch.device = "cpu") -> list[RecallAt]:
    """Recall@k of the source's own triplets by ``model``, classified against all of the source's texts."""
    records = [source.get(p, i) for p, n in enumerate(source.part_sizes) for i in range(n)]
    entities, relations = sorted(source.entity_counts), sorted(source.relation_counts)
    dataset = TrainDataset([source], eval_transform(AugmentConfig().scaled(augment_scale)))
    pictures = [load_image(r.image_root, r.file_name) for r in records]
    batch = collate([dataset.prepare(r, image, random.Random(0)) for r, image in zip(records, pictures)])
    model.eval().to(device)
    outputs = model(batch.images.to(device), ([entities] * len(batch), [relations] * len(batch)))
    # Ground-truth boxes are in the original pixels: report predictions there too.
    sizes = [image.size for image in pictures]
    results = []
    for k in ks:
        predictions = postprocess(outputs, sizes, top_k=k, protocol="all-entities")
        found, total = triplet_recall(predictions, records, entities, relations)
        results.append(RecallAt(k, found, reachable_triplets(records, k, model.config.num_queries), total))
    return results


def overfit_check(run: Path, output: Path, *, images: int = 8, steps: int = 300, preset: str = "tiny",
                  lr: float = 2e-3, image_root: Path | None = None, augment_scale: float = 0.25,
                  device: str = "cpu", seed: int = 42, model: dict[str, Any] | None = None,
                  **overrides: Any) -> OverfitReport:
    """Train on the first ``images`` images of ``run`` for ``steps`` steps and measure what was learnt.

    A run with fewer images with relations than ``images`` trains on all it has.
    """
    source = ShardSource(Path(run), image_root, max_images=images)
    cfg = overfit_config(run, output, images=len(source), steps=steps, preset=preset, lr=lr, image_root=image_root,
                         augment_scale=augment_scale, device=device, seed=seed, model=model, **overrides)
    started = time.perf_counter()
    result = train(cfg)
    seconds = time.perf_counter() - started
    assert result.model is not None
    curves = {term: [(int(row["step"]), float(row[term])) for row in result.history if term in row]
              for term in LOSS_TERMS}
    source = ShardSource(Path(run), image_root, max_relations=cfg.max_relations, max_images=len(source))
    recall = training_recall(result.model, source, augment_scale, device=next(result.model.parameters()).device)
    return OverfitReport(Path(run).name, preset, len(source), result.step, seconds,
                         {t: c for t, c in curves.items() if c}, recall)


__all__ = ["OverfitReport", "RecallAt", "overfit_check", "overfit_config", "reachable_triplets", "training_recall"]


def overfit_command(args: Any) -> int:
    """``relfactory train --shards RUN --overfit N``: the learning check from the command line."""
    import json

    from pipeline.config import ConfigError

    runs = args.shards or []
    if len(runs) != 1 or args.config or args.vg or args.pseudo_json or args.hico or args.vcoco:
        raise ConfigError("--overfit N checks one shard run: give exactly one --shards RUN (and no other source)")
    images = args.images or []
    if len(images) > 1:
        raise ConfigError("--overfit: give one --images root")
    output = Path(args.output or Path("train-runs") / f"overfit-{Path(runs[0]).name}")
    report = overfit_check(Path(runs[0]), output, images=args.overfit, steps=args.max_steps or 300,
                           preset=args.preset or "tiny", lr=args.lr or 2e-3,
                           image_root=Path(images[0]) if images else None,
                           augment_scale=args.augment_scale or 0.25,
                           device=args.device or "cpu", seed=args.seed if args.seed is not None else 42)
    print(report.format())
    (output / "overfit.json").write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    print(f"written to {output / 'overfit.json'}")
    return 0
