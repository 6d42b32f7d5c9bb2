"""The ``relfactory`` command line.

    relfactory label    label a COCO-format dataset into relational shards
    relfactory runs     list runs and the state of their stages
    relfactory inspect  schema, counts, per-image statistics, errors, samples of a stage; --image, --errors
    relfactory show     draw one image's boxes and relations (or candidate pairs) to PNG
    relfactory report   self-contained HTML report of a run
    relfactory diff     relations added/removed between two runs
    relfactory export   write a run's shards as official RLIPv2 JSON
    relfactory import   read official RLIPv2 pseudo-label JSON into a run's shards
    relfactory migrate  convert a run folder of the old stage layout in place
    relfactory deploy   schedule the labelling flow with a cron expression
    relfactory doctor   check versions, Prefect server and scheduler, Ray, GPU and model cache
    relfactory demo     label the bundled demo photos end to end
    relfactory train    train RLIPv2 / the R-Tagger from shards (and other sources)
    relfactory evaluate evaluate a checkpoint on HICO-DET, V-COCO or Open Images
    relfactory relclip  RelCLIP predicate classifier: train on shards / VG, Visual Genome PredCls
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

from pipeline.config import ConfigError, RunConfig, load_config, load_config_file

log = logging.getLogger("relfactory")


def _label_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Flags given on the command line, as a nested config dict (None = not given)."""
    flat = {
        ("name",): args.run, ("output",): args.output, ("seed",): args.seed, ("part_size",): args.part_size,
        ("workers",): args.workers, ("retry_failed",): args.retry_failed or None,
        ("reuse_runs",): False if args.no_reuse else None, ("ray_address",): args.ray_address, ("executor",): args.executor,
        ("dataset", "kind"): args.dataset_kind, ("dataset", "annotations"): args.annotations,
        ("dataset", "images"): args.images, ("dataset", "split"): args.split,
        ("dataset", "max_images"): args.max_images,
        ("caption", "backend"): args.captioner, ("caption", "model_id"): args.caption_model,
        ("caption", "captions_file"): args.captions_file, ("caption", "n_captions"): args.n_cap,
        ("parse", "parser"): args.parser,
        ("match", "synonyms_file"): args.synonyms,
        ("tag", "tagger"): args.tagger, ("tag", "eta"): args.eta, ("tag", "checkpoint"): args.checkpoint,
        ("tag", "clip_model"): args.clip_model,
        ("tag", "require_overlap"): args.require_overlap, ("tag", "seed"): args.tagger_seed,
        ("tag", "max_relations_per_image"): _cap(args.max_relations_per_image),
        ("tag", "max_relations_per_proposal"): _cap(args.max_relations_per_proposal),
        ("tag", "confidence"): args.rtagger_confidence, ("tag", "device"): args.tag_device,
    }
    nested: dict[str, Any] = {}
    for path, value in flat.items():
        if value is None:
            continue
        node = nested
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = value
    return nested


def _cap(value: str | None) -> int | str | None:
    """A cap flag: a count, or 'none' for no cap (kept as a string so the config names a bad value)."""
    if value is None:
        return None
    if value.strip().lower() == "none":
        return "none"
    return int(value) if value.strip().isdigit() else value


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        out[key] = _merge(out.get(key, {}), value) if isinstance(value, dict) else value
    return out


def build_config(args: argparse.Namespace) -> RunConfig:
    base = load_config_file(Path(args.config)).model_dump(mode="json", exclude_unset=True) if args.config else {}
    data = _merge(base, _label_overrides(args))
    if data.get("caption", {}).get("backend") == "oracle" and "captions_file" not in data.get("caption", {}):
        from pipeline.datasets import default_captions_file
        from pipeline.config import DatasetConfig

        bundled = default_captions_file(DatasetConfig.model_validate(data.get("dataset", {"kind": "demo"})))
        if bundled is not None:
            data.setdefault("caption", {})["captions_file"] = str(bundled)
    return load_config(data)


def _add_label_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML/JSON run config; flags override it")
    p.add_argument("--run", help="run name (directory under --output)")
    p.add_argument("--output", help="output root (default: runs)")
    p.add_argument("--dataset-kind", choices=["coco", "objects365", "coco-format", "demo"])
    p.add_argument("--annotations", help="instances_*.json / zhiyuan_objv2_*.json")
    p.add_argument("--images", help="image root folder")
    p.add_argument("--split", help="data_split of the rows (default: from the annotation file name, "
                                   "instances_val2017.json -> val2017)")
    p.add_argument("--max-images", type=int)
    p.add_argument("--captioner", choices=["blip", "oracle", "lavis"])
    p.add_argument("--caption-model", help="Hugging Face id or local directory of the captioner")
    p.add_argument("--captions-file", help="COCO captions_*.json for --captioner oracle")
    p.add_argument("--n-cap", type=int, help="captions per image (N_cap)")
    p.add_argument("--parser", choices=["rules", "sng"])
    p.add_argument("--synonyms", help="JSON file {class: [synonyms]} extending the synonym table")
    from stages.taggers import TAGGERS

    p.add_argument("--tagger", choices=list(TAGGERS),
                   help="layout (default; geometry + caption number), greedy (paper's rule: one random text per "
                        "pair), greedy-all (every text on every pair), nearest, rtagger, clip")
    p.add_argument("--require-overlap", action=argparse.BooleanOptionalAction, default=None,
                   help="greedy, greedy-all, clip: only pairs whose boxes overlap (IoU > 0)")
    p.add_argument("--tagger-seed", type=int, help="seed of greedy's random choice of relation text")
    p.add_argument("--max-relations-per-image", help="keep at most N relations per image (default 100; 'none')")
    p.add_argument("--max-relations-per-proposal", help="keep at most N relations per proposal (default 10; 'none')")
    p.add_argument("--rtagger-confidence", choices=["paper", "relation-only"],
                   help="R-Tagger confidence: subject x object x relation (paper) or relation only (official code)")
    p.add_argument("--tag-device", help="device of model-backed taggers (auto, cpu, cuda:0 ...)")
    p.add_argument("--checkpoint", help="R-Tagger checkpoint for --tagger rtagger")
    p.add_argument("--clip-model", help="CLIP id or local directory for --tagger clip "
                   "(default openai/clip-vit-base-patch32)")
    p.add_argument("--eta", type=float, help="keep relations with confidence > eta (default 0.2)")
    p.add_argument("--seed", type=int)
    p.add_argument("--part-size", type=int, help="images per part (unit of work and resume)")
    p.add_argument("--workers", type=int, help="Ray workers (CPUs) on the local machine")
    p.add_argument("--ray-address", help="address of an existing Ray cluster")
    p.add_argument("--executor", choices=["ray", "local"])
    p.add_argument("--no-reuse", action="store_true",
                   help="compute every stage here instead of adopting identical parts from other runs")
    p.add_argument("--retry-failed", action="store_true",
                   help="re-run parts that failed all their retries in an earlier run (and what follows them)")
    p.add_argument("--orchestrator", choices=["prefect", "none"], default="prefect",
                   help="run as a Prefect flow (default) or directly")


def cmd_label(args: argparse.Namespace) -> int:
    from pipeline.cli_label import label_and_report

    return label_and_report(build_config(args), args.orchestrator)


def cmd_runs(args: argparse.Namespace) -> int:
    from storage.inspect import list_runs

    print(list_runs(Path(args.output)))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from storage.export import export_rlipv2_json

    run_dir = Path(args.output) / args.run
    dest = Path(args.dest) if args.dest else run_dir / "export" / "rlipv2.json"
    count = export_rlipv2_json(run_dir, dest)
    print(f"wrote {count} images to {dest}")
    return 0


def cmd_deploy(args: argparse.Namespace) -> int:
    from flows.deployments import serve_labelling

    cfg = build_config(args)
    serve_labelling(cfg, cron=args.cron, name=args.deployment_name, interval_s=args.interval,
                    stop_grace_s=args.stop_grace)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from pipeline.demo import run_demo

    return run_demo(Path(args.output), orchestrator=args.orchestrator, captioner=args.captioner)


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="relfactory", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("label", help="label a dataset into relational shards")
    _add_label_args(p)
    p.set_defaults(func=cmd_label)

    p = sub.add_parser("runs", help="list runs and their stages' state")
    p.add_argument("--output", default="runs")
    p.set_defaults(func=cmd_runs)

    from pipeline.cli_inspect import add_inspect_parsers

    add_inspect_parsers(sub)  # inspect, show, report, diff

    p = sub.add_parser("export", help="export shards to another format")
    p.add_argument("run")
    p.add_argument("--format", choices=["rlipv2-json"], default="rlipv2-json")
    p.add_argument("--dest", help="output file (default: <run>/export/rlipv2.json)")
    p.add_argument("--output", default="runs")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("deploy", help="serve the labelling flow on a cron schedule")
    _add_label_args(p)
    when = p.add_mutually_exclusive_group(required=True)
    when.add_argument("--cron", help='cron expression (UTC), e.g. "0 2 * * 0"')
    when.add_argument("--interval", type=float, help="run every this many seconds instead of on a cron")
    p.add_argument("--deployment-name", default="relfactory-pseudo-label")
    p.add_argument("--stop-grace", type=float, default=5.0,
                   help="on SIGTERM, seconds a run in progress gets to finish before it is stopped (default 5)")
    p.set_defaults(func=cmd_deploy)

    p = sub.add_parser("demo", help="label the bundled demo photos end to end")
    p.add_argument("--output", default="demo-output")
    p.add_argument("--captioner", choices=["oracle", "blip"], default="oracle",
                   help="oracle: the demo's written captions (offline); blip: needs BLIP weights locally")
    p.add_argument("--orchestrator", choices=["prefect", "none"], default="prefect")
    p.set_defaults(func=cmd_demo)

    from pipeline.cli_train import add_train_parsers

    add_train_parsers(sub)
    from pipeline.cli_storage import add_storage_parsers

    add_storage_parsers(sub)
    from pipeline.doctor import add_doctor_parser

    add_doctor_parser(sub)
    from pipeline.cli_relclip import add_relclip_parsers

    add_relclip_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    if not args.verbose:
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"relfactory: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        from pipeline.errors import user_facing

        message = user_facing(exc)
        if message is None:
            raise
        print(f"relfactory: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
