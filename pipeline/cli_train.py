"""``relfactory train`` and ``relfactory evaluate``.

    relfactory train --shards runs/coco runs/o365 --weights 1 0.5 --output train-runs/rlipv2
    relfactory train --mode rtagger --vg scene_graphs.json --vg-images VG_100K --output train-runs/tagger
    relfactory train --mode finetune --init-checkpoint train-runs/rlipv2/checkpoint.pth \\
        --hico trainval_hico.json --hico-images hico/images/train2015 --hico-meta hico_meta.json --few-shot 1
    relfactory evaluate --checkpoint train-runs/rlipv2/checkpoint.pth --benchmark hico-det \\
        --annotations test_hico.json --images hico/images/test2015 --meta hico_meta.json

Flags override a ``--config`` YAML/JSON file (a :class:`stages.train.config.TrainConfig`).
Under ``torchrun`` (``WORLD_SIZE`` > 1) training runs directly in each
process, without Prefect; ``--launcher ray`` trains on a Ray cluster.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from pipeline.config import ConfigError


def _sources(args: argparse.Namespace) -> list[dict[str, Any]]:
    sources: list[dict[str, Any]] = []
    runs = args.shards or []
    images = args.images or []
    if images and len(images) not in (1, len(runs)):
        raise ConfigError(f"--images: give one image root, or one per --shards run ({len(runs)})")
    for i, run in enumerate(runs):
        spec: dict[str, Any] = {"kind": "shards", "path": run}
        if images:
            spec["images"] = images[i if len(images) > 1 else 0]
        if args.eta is not None:
            spec["eta"] = args.eta
        sources.append(spec)
    if args.vg:
        sources.append({"kind": "vg", "path": args.vg, "images": args.vg_images})
    for path in args.pseudo_json or []:
        sources.append({"kind": "rlipv2-json", "path": path, "images": args.pseudo_images,
                        **({"file_names": args.file_names} if args.file_names else {}),
                        **({"eta": args.eta} if args.eta is not None else {})})
    if args.hico:
        sources.append({"kind": "hico-det", "path": args.hico, "images": args.hico_images, "meta": args.hico_meta,
                        **({"few_shot": args.few_shot} if args.few_shot else {})})
    if args.vcoco:
        sources.append({"kind": "v-coco", "path": args.vcoco, "images": args.vcoco_images,
                        **({"few_shot": args.few_shot} if args.few_shot else {})})
    if args.weights:
        if len(args.weights) != len(sources):
            raise ConfigError(f"--weights: {len(args.weights)} given for {len(sources)} sources")
        for spec, weight in zip(sources, args.weights):
            spec["weight"] = weight
    return sources


def build_train_config(args: argparse.Namespace) -> Any:
    from stages.train.config import load_train_config, load_train_config_file

    data: dict[str, Any] = load_train_config_file(Path(args.config)).model_dump(mode="json", exclude_unset=True) \
        if args.config else {}
    sources = _sources(args)
    if sources:
        data["sources"] = sources
    flags = {"mode": args.mode, "preset": args.preset, "variant": args.variant, "output": args.output,
             "init_checkpoint": args.init_checkpoint, "epochs": args.epochs, "global_batch": args.batch_size,
             "lr": args.lr, "seed": args.seed, "device": args.device, "num_workers": args.num_workers,
             "max_steps": args.max_steps, "amp": args.amp, "augment_scale": args.augment_scale,
             "loss": args.loss}
    data.update({k: v for k, v in flags.items() if v is not None})
    if args.lr_drop is not None:
        data["lr_drop_epochs"] = args.lr_drop
    if args.no_resume:
        data["resume"] = False
    if "sources" not in data:
        raise ConfigError("nothing to train on: give --shards, --vg, --pseudo-json, --hico/--vcoco or a --config")
    cfg = load_train_config(data)
    # Arguments are checked first; then a run made elsewhere fails here, naming --images, before any flow starts.
    from stages.train.sources import run_image_root

    for spec in sources:
        if spec["kind"] == "shards" and "images" not in spec:
            run_image_root(Path(spec["path"]))
    return cfg


def cmd_train(args: argparse.Namespace) -> int:
    if args.overfit:
        from stages.train.overfit import overfit_command

        return overfit_command(args)
    cfg = build_train_config(args)
    under_torchrun = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if args.orchestrator == "none" or under_torchrun:
        if args.launcher == "ray":
            from stages.train.ray_train import train_with_ray

            summary: dict[str, Any] = train_with_ray(cfg, num_workers=args.ray_workers, use_gpu=args.use_gpu,
                                                     address=args.ray_address)
        else:
            from stages.train.engine import train

            result = train(cfg)
            summary = {"step": result.step, "total_steps": result.total_steps, "final_loss": result.final_loss,
                       "images_per_second": result.images_per_second,
                       "checkpoint": str(result.checkpoint) if result.checkpoint else None}
    else:
        from flows.train import train_flow

        summary = train_flow(cfg.model_dump(mode="json"), launcher=args.launcher, workers=args.ray_workers,
                             use_gpu=args.use_gpu, ray_address=args.ray_address)
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps(summary, indent=2, default=str))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    if args.predictions:
        from stages.train.cli_predictions import evaluate_predictions_command

        return evaluate_predictions_command(args)
    if not args.checkpoint or not args.images:
        raise ConfigError("evaluate: give --checkpoint and --images (or --predictions FILE to score a file)")
    options = {"meta": args.meta, "coco_instances": args.coco_instances, "object_names": args.object_names,
               "predicate_names": args.predicate_names, "max_images": args.max_images,
               "batch_size": args.batch_size, "size": args.size, "device": args.device,
               "protocol": args.protocol, "save_predictions": args.save_predictions}
    if args.orchestrator == "prefect":
        from flows.evaluate import evaluate_flow

        evaluate_flow(args.checkpoint, args.benchmark, args.annotations, args.images,
                      {k: (str(v) if isinstance(v, Path) else v) for k, v in options.items() if v is not None})
        return 0
    from stages.train.evaluate import evaluate_checkpoint, show

    paths = {k: Path(v) if k in ("meta", "coco_instances", "object_names", "predicate_names") and v else v
             for k, v in options.items() if v is not None}
    result, path = evaluate_checkpoint(Path(args.checkpoint), args.benchmark, Path(args.annotations),
                                       Path(args.images), **paths)
    print(show(result))
    print(f"written to {path}")
    return 0


def add_train_parsers(subparsers: Any) -> None:
    """Register ``train`` and ``evaluate`` on the ``relfactory`` sub-command parser."""
    p = subparsers.add_parser("train", help="train RLIPv2 / the R-Tagger from shards, or fine-tune",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="YAML/JSON training config; flags override it")
    p.add_argument("--mode", choices=["pretrain", "rtagger", "finetune"])
    p.add_argument("--preset", choices=["tiny", "small", "full"],
                   help="tiny: the CPU-sized model (tests, demo); small: CPU-sized with the pretrained MiniLM "
                        "text encoder shipped offline; full: the paper's model")
    p.add_argument("--variant", choices=["parsed", "parseda", "rtagger"])
    p.add_argument("--shards", nargs="+", metavar="RUN", help="labelling run directories (<output>/<run>)")
    p.add_argument("--images", nargs="+", help="image root: one for all --shards runs, or one per run")
    p.add_argument("--eta", type=float, help="stricter confidence threshold applied when reading")
    p.add_argument("--vg", help="Visual Genome scene graphs (official RLIPv2 JSON)")
    p.add_argument("--vg-images", help="Visual Genome image folder")
    p.add_argument("--pseudo-json", nargs="+", help="official RLIPv2 pseudo-label JSON files")
    p.add_argument("--pseudo-images", help="image folder of the --pseudo-json files")
    p.add_argument("--file-names", help="COCO-format annotations mapping image ids to file names")
    p.add_argument("--hico", help="HICO-DET trainval_hico.json (QPIC format), for fine-tuning")
    p.add_argument("--hico-images", help="HICO-DET train images")
    p.add_argument("--hico-meta", help="hico_meta.json (verb names)")
    p.add_argument("--vcoco", help="V-COCO trainval_vcoco.json (QPIC format), for fine-tuning")
    p.add_argument("--vcoco-images", help="COCO images of V-COCO")
    p.add_argument("--few-shot", type=float, help="percent of the downstream training set (1, 10)")
    p.add_argument("--weights", nargs="+", type=float, help="per-source repeat factor per epoch")
    p.add_argument("--init-checkpoint", help="start from this checkpoint (fine-tuning)")
    p.add_argument("--output", help="training output directory")
    p.add_argument("--epochs", type=int)
    p.add_argument("--lr-drop", type=int, nargs="*", help="epochs at which the lr is multiplied by 0.1")
    p.add_argument("--batch-size", type=int, help="global batch size (all ranks together)")
    p.add_argument("--lr", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--device", help="auto, cpu, cuda, cuda:1 ...")
    p.add_argument("--amp", choices=["auto", "off", "fp16", "bf16"])
    p.add_argument("--augment-scale", type=float, help="scale every augmentation size (tiny models: 0.25)")
    p.add_argument("--loss", choices=["rlipv2", "rcl"],
                   help="rcl: add RelCLIP's relational contrastive term to RLIPv2's losses")
    p.add_argument("--num-workers", type=int, help="data-loading processes per rank")
    p.add_argument("--max-steps", type=int, help="stop after this many steps")
    p.add_argument("--no-resume", action="store_true", help="ignore a training state already in --output")
    p.add_argument("--overfit", type=int, metavar="N",
                   help="learning check: train on the first N images of the --shards run without augmentation "
                        "(--max-steps, default 300; --preset default tiny) and print the loss curves and "
                        "recall@10/@100 of the training triplets")
    p.add_argument("--launcher", choices=["local", "ray"], default="local",
                   help="local: this process (or torchrun's); ray: Ray Train TorchTrainer workers")
    p.add_argument("--ray-workers", type=int, default=1)
    p.add_argument("--ray-address")
    p.add_argument("--use-gpu", action="store_true", help="one GPU per Ray worker")
    p.add_argument("--orchestrator", choices=["prefect", "none"], default="prefect")
    p.set_defaults(func=cmd_train)

    p = subparsers.add_parser("evaluate", help="score a checkpoint (or a predictions file) on HICO-DET, V-COCO "
                                                "or Open Images")
    p.add_argument("--checkpoint", help="the model to run (or give --predictions)")
    p.add_argument("--predictions", help="score this QPIC-format predictions file instead of running a model")
    p.add_argument("--benchmark", required=True, choices=["hico-det", "v-coco", "oi-sgg"])
    p.add_argument("--annotations", required=True,
                   help="test_hico.json / vcoco_test.json (official) / OI_SGG_test.json")
    p.add_argument("--images", help="folder of the benchmark's test images (with --checkpoint)")
    p.add_argument("--protocol", choices=["qpic", "all-entities"],
                   help="post-processing: qpic (default for hico-det / v-coco: subject = person, verb x object, "
                        "undefined pairs dropped before the top 100) or all-entities (relfactory's own)")
    p.add_argument("--save-predictions", help="also write the model's predictions here (QPIC format, .json[.gz])")
    p.add_argument("--meta", help="hico-det: hico_meta.json")
    p.add_argument("--coco-instances", help="v-coco: the COCO instances JSON of its images")
    p.add_argument("--object-names", help="oi-sgg: JSON list of object names")
    p.add_argument("--predicate-names", help="oi-sgg: JSON list of predicate names")
    p.add_argument("--max-images", type=int, help="evaluate the first N images only")
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--size", type=int, default=800, help="short side of the resized image")
    p.add_argument("--device", default="auto")
    p.add_argument("--orchestrator", choices=["prefect", "none"], default="prefect")
    p.set_defaults(func=cmd_evaluate)
