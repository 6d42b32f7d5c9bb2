"""RelCLIP classifier: overfit check and small-scale ablation on real relations.

Relations come from the V-COCO gold labels of the coco-mini images (always,
when ``../shared/data`` is present) and, with ``--shards RUN``, from a
relfactory labelling run (e.g. coco-mini labelled with its human captions)::

    relfactory label --dataset-kind coco --annotations ../shared/data/coco-mini/annotations/instances_train2017.json \
        --images ../shared/data/coco-mini/train2017 --captioner oracle \
        --captions-file ../shared/data/coco-mini/annotations/captions_train2017.json \
        --tagger greedy --run coco-mini-oracle --output /tmp/runs --orchestrator none --executor local
    .venv/bin/python bench/relclip_overfit.py --shards /tmp/runs/coco-mini-oracle \
        --images ../shared/data/coco-mini/train2017                    # overfit: loss and accuracy per step
    .venv/bin/python bench/relclip_overfit.py --shards ... --ablation  # held-out accuracy per RCL variant

``--clip-model`` is a CLIP id or directory (ViT-B/32 for the paper's
setting); without it a tiny random CLIP is built, which can overfit but whose
held-out numbers say nothing about RCL (its text encoder knows no words).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from model.relclip.classifier import RelationSet, build_relclip, embed_samples  # noqa: E402
from model.relclip.clip_encoder import load_clip  # noqa: E402
from model.relclip.data import RelationSample, samples_from_records, vcoco_samples  # noqa: E402
from model.relclip.sampling import predicate_similarity  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
# name -> build_relclip options; "full" is RelCLIP: dual contrast, informative sampling, synonyms out, weights.
VARIANTS: dict[str, dict[str, Any]] = {
    "full (dual)": {"mode": "dual"},
    "triple": {"mode": "triple"},
    "unary": {"mode": "unary"},
    "dual, no sampling": {"mode": "dual", "max_negatives": None},
    "dual, no synonym removal": {"mode": "dual", "exclude_synonyms": False},
    "dual, no weighting": {"mode": "dual", "weighted": False},
}


def load_samples(shards: Path | None, images: Path | None) -> list[RelationSample]:
    samples: list[RelationSample] = []
    coco = SHARED / "coco-mini"
    if coco.is_dir():
        for split in ("train", "val"):
            samples += vcoco_samples(SHARED / "v-coco" / f"vcoco_{split}.json",
                                     coco / "annotations" / "instances_train2017.json", coco / "train2017")
    if shards is not None:
        from stages.train.sources import ShardSource

        source = ShardSource(shards, images)
        samples += samples_from_records(source.get(part, row) for part, size in enumerate(source.part_sizes)
                                        for row in range(size))
    return samples


def split_by_image(data: RelationSet, samples: list[RelationSample], held_out: float, seed: int
                   ) -> tuple[RelationSet, RelationSet]:
    """Train/test sets with no image in both (a pair's crops never leak across)."""
    paths = sorted({s.image_path for s in samples})
    order = torch.randperm(len(paths), generator=torch.Generator().manual_seed(seed)).tolist()
    test_images = {paths[i] for i in order[: max(1, int(round(held_out * len(paths))))]}
    is_test = torch.tensor([s.image_path in test_images for s in samples])
    return data.take(torch.nonzero(~is_test).flatten()), data.take(torch.nonzero(is_test).flatten())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shards", type=Path, help="a labelling run directory whose shard relations to add")
    parser.add_argument("--images", type=Path, help="image folder of --shards (default: from its manifest)")
    parser.add_argument("--clip-model", help="CLIP id or directory (default: a tiny random CLIP)")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--threads", type=int, help="torch CPU threads (1 is fastest on a busy machine)")
    parser.add_argument("--max-negatives", type=int, default=16, help="informative negatives kept per predicate")
    parser.add_argument("--ablation", action="store_true", help="held-out accuracy of every RCL variant")
    parser.add_argument("--held-out", type=float, default=0.3, help="share of images held out (--ablation)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds averaged per variant (--ablation)")
    args = parser.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    started = time.perf_counter()
    samples = load_samples(args.shards, args.images)
    if not samples:
        parser.error("no relations: ../shared/data is absent and no --shards was given")
    model_id = args.clip_model
    if model_id is None:
        from model.relclip.tiny import save_tiny_clip

        model_id = str(save_tiny_clip(Path(tempfile.mkdtemp(prefix="relclip-")) / "clip"))
        print("CLIP: a tiny random model (no pretrained weights)")
    encoder = load_clip(model_id, "auto")
    data = embed_samples(encoder, samples)
    similarity = predicate_similarity(data.predicates)
    print(f"{len(samples)} relations, {len(data.predicates)} predicates, {len(data.entities)} entity classes, "
          f"{len({s.image_path for s in samples})} images; CLIP features {encoder.dim}-d "
          f"({time.perf_counter() - started:.1f} s)")

    if not args.ablation:
        torch.manual_seed(0)
        classifier = build_relclip(encoder, data, mode="dual", similarity=similarity,
                                   max_negatives=args.max_negatives)
        history = classifier.fit(data, steps=args.steps, lr=args.lr, log_every=max(1, args.steps // 10))
        print(f"overfit: loss {history.loss[0]:.4f} -> {history.loss[-1]:.4f}, "
              f"accuracy {history.accuracy[0]:.3f} -> {history.accuracy[-1]:.3f} "
              f"({time.perf_counter() - started:.1f} s)")
        return 0

    print(f"ablation: {args.seeds} image splits ({args.held_out:.0%} of images held out), {args.steps} steps each")
    for name, options in VARIANTS.items():
        options = {"max_negatives": args.max_negatives, **options}
        zero_shot, trained = [], []
        for seed in range(args.seeds):
            train, test = split_by_image(data, samples, args.held_out, seed)
            torch.manual_seed(seed)
            classifier = build_relclip(encoder, data, similarity=similarity, **options)
            zero_shot.append(classifier.accuracy(test))
            classifier.fit(train, steps=args.steps, lr=args.lr, seed=seed)
            trained.append(classifier.accuracy(test))
        mean = sum(trained) / len(trained)
        print(f"{name:<26} held-out accuracy {mean:.3f} (per split {', '.join(f'{v:.3f}' for v in trained)}; "
              f"untrained {sum(zero_shot) / len(zero_shot):.3f})")
    print(f"({time.perf_counter() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
