"""``relfactory relclip``: the RelCLIP predicate classifier on frozen CLIP features.

    relfactory relclip train --shards runs/coco-blip --output relclip.pt           # relations of a labelling run
    relfactory relclip train --vg VG150 --vg-images VG_100K --output relclip-vg.pt # VG150 train split
    relfactory relclip predcls --checkpoint relclip.pt --vg VG150 --vg-images VG_100K   # R@K / mR@K, PredCls

``--vg`` is the folder of the standard VG-SGG files (see
``stages/evaluation/vg_files.py``). The CLIP model defaults to
``openai/clip-vit-base-patch32`` from the local Hugging Face cache.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from pipeline.config import ConfigError


def _samples(args: argparse.Namespace) -> list[Any]:
    from model.relclip.data import samples_from_records

    samples: list[Any] = []
    images = args.images or []
    if images and len(images) not in (1, len(args.shards or [])):
        raise ConfigError("--images: give one image root, or one per --shards run")
    for i, run in enumerate(args.shards or []):
        from stages.train.sources import ShardSource

        source = ShardSource(Path(run), Path(images[i if len(images) > 1 else 0]) if images else None,
                             eta=args.eta)
        samples += samples_from_records(source.get(part, row) for part, size in enumerate(source.part_sizes)
                                        for row in range(size))
    if args.vg:
        from model.relclip.predcls import vg_samples
        from stages.evaluation.vg_files import read_vg_sgg

        if not args.vg_images:
            raise ConfigError("--vg needs --vg-images (the VG_100K image folder)")
        samples += vg_samples(read_vg_sgg(args.vg, args.vg_split, max_images=args.max_images), args.vg_images)
    if not samples:
        raise ConfigError("relclip train: no relations; give --shards RUN and/or --vg DIR --vg-images DIR")
    return samples


def cmd_relclip_train(args: argparse.Namespace) -> int:
    import torch

    from model.relclip.checkpoint import save_relclip
    from model.relclip.classifier import build_relclip, embed_samples
    from model.relclip.clip_encoder import load_clip

    samples = _samples(args)
    encoder = load_clip(args.clip_model, args.device)
    data = embed_samples(encoder, samples)
    print(f"{len(data)} relations, {len(data.predicates)} predicates, {len(data.entities)} entity classes; "
          f"CLIP {args.clip_model} ({encoder.dim}-d)", flush=True)
    torch.manual_seed(args.seed)
    classifier = build_relclip(encoder, data, mode=args.mode, epsilon=args.epsilon, max_negatives=args.max_negatives,
                               exclude_synonyms=not args.keep_synonyms, weighted=not args.unweighted)
    history = classifier.fit(data, steps=args.steps, lr=args.lr, batch_size=args.batch_size, seed=args.seed,
                             log_every=max(1, args.steps // 10))
    path = save_relclip(args.output, classifier, clip_model=args.clip_model, predicates=data.predicates,
                        entities=data.entities,
                        extra={"steps": args.steps, "loss": history.loss[-1], "accuracy": history.accuracy[-1]})
    print(json.dumps({"checkpoint": str(path), "final_loss": history.loss[-1],
                      "train_accuracy": history.accuracy[-1]}, indent=2))
    return 0


def cmd_relclip_predcls(args: argparse.Namespace) -> int:
    from model.relclip.checkpoint import load_relclip, read_relclip
    from model.relclip.clip_encoder import load_clip
    from model.relclip.predcls import predcls_predictions
    from stages.evaluation.report import format_table, write_result
    from stages.evaluation.vg_files import read_vg_sgg, restrict_predicates
    from stages.evaluation.vg_sgg import evaluate_vg_sgg

    graphs = read_vg_sgg(args.vg, args.split, max_images=args.max_images)
    if args.predicates:
        keep = json.loads(Path(args.predicates).read_text())
        if not isinstance(keep, list) or not all(isinstance(p, str) for p in keep):
            raise ConfigError(f"--predicates {args.predicates}: expected a JSON list of predicate names")
        graphs = restrict_predicates(graphs, keep)
    clip_model = args.clip_model or read_relclip(args.checkpoint)["clip_model"]
    encoder = load_clip(clip_model, args.device)
    classifier = load_relclip(args.checkpoint, encoder, graphs.object_classes, graphs.predicates)
    predictions = predcls_predictions(classifier, encoder, graphs, args.vg_images)
    result = evaluate_vg_sgg(predictions, graphs.images, task="predcls", num_predicates=len(graphs.predicates),
                             predicate_names=graphs.predicates)
    print(format_table(result))
    path = write_result(result, Path(args.checkpoint), extra={"vg": str(args.vg), "split": args.split,
                                                              "predicates": len(graphs.predicates)})
    print(f"written to {path}")
    return 0


def add_relclip_parsers(subparsers: Any) -> None:
    """Register ``relclip train`` and ``relclip predcls`` on the ``relfactory`` sub-command parser."""
    relclip = subparsers.add_parser("relclip", help="RelCLIP predicate classifier: train, VG PredCls")
    sub = relclip.add_subparsers(dest="relclip_command", required=True)

    p = sub.add_parser("train", help="train the classifier head with relational contrastive learning")
    p.add_argument("--shards", nargs="+", metavar="RUN", help="labelling run directories")
    p.add_argument("--images", nargs="+", help="image root: one for all --shards runs, or one per run")
    p.add_argument("--eta", type=float, help="stricter confidence threshold for shard relations")
    p.add_argument("--vg", help="folder of the VG-SGG files")
    p.add_argument("--vg-images", help="Visual Genome image folder (VG_100K)")
    p.add_argument("--vg-split", choices=["train", "val", "test"], default="train")
    p.add_argument("--max-images", type=int, help="only the first N VG images")
    p.add_argument("--clip-model", default="openai/clip-vit-base-patch32", help="CLIP id or local directory")
    p.add_argument("--mode", choices=["dual", "triple", "unary"], default="dual", help="contrast level")
    p.add_argument("--epsilon", type=float, default=0.7, help="synonym threshold of the negative dictionaries")
    p.add_argument("--max-negatives", type=int, help="keep only the N most similar non-synonym negatives")
    p.add_argument("--keep-synonyms", action="store_true", help="ablation: synonyms stay negatives")
    p.add_argument("--unweighted", action="store_true", help="ablation: every negative weighs 1")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch-size", type=int, help="relations per step (default: all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--output", required=True, help="checkpoint file to write")
    p.set_defaults(func=cmd_relclip_train)

    p = sub.add_parser("predcls", help="Visual Genome PredCls: R@20/50/100, mR@K, with and without graph constraint")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--vg", required=True, help="folder of the VG-SGG files")
    p.add_argument("--vg-images", required=True, help="Visual Genome image folder (VG_100K)")
    p.add_argument("--split", choices=["train", "val", "test"], default="test")
    p.add_argument("--predicates", help="JSON list of predicate names: evaluate a refined split (e.g. 20 predicates)")
    p.add_argument("--max-images", type=int)
    p.add_argument("--clip-model", help="CLIP id or directory (default: the one the checkpoint was trained with)")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_relclip_predcls)
