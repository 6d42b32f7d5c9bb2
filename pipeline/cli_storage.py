"""``relfactory migrate`` and ``relfactory import``: bring run folders made elsewhere into the current layout.

    relfactory migrate RUN                      convert an old-layout run folder in place
    relfactory import FILE --run NAME           official RLIPv2 pseudo-label JSON -> a run's shard stage
"""

from __future__ import annotations

import argparse
from pathlib import Path


def _run_dir(run: str, output: str) -> Path:
    direct = Path(run)
    return direct if direct.is_dir() and not (Path(output) / run).is_dir() else Path(output) / run


def cmd_migrate(args: argparse.Namespace) -> int:
    from storage.layout_migration import migrate_run

    run_dir = _run_dir(args.run, args.output)
    migrated = migrate_run(run_dir)
    if not migrated:
        print(f"{run_dir}: already in the current layout")
    for stage, parts in migrated.items():
        print(f"{run_dir.name}/{stage}: migrated ({parts} committed parts kept)")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from storage.rlipv2_import import import_rlipv2_json

    run_dir = Path(args.output) / args.run
    count = import_rlipv2_json(Path(args.source), run_dir, images=Path(args.images) if args.images else None,
                               image_paths=Path(args.image_paths) if args.image_paths else None,
                               part_size=args.part_size)
    print(f"imported {count} images into {run_dir / 'shard'}")
    return 0


def add_storage_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("migrate", help="convert a run folder of the old layout (part-*.done, errors/) in place")
    p.add_argument("run", help="run name under --output, or a run folder")
    p.add_argument("--output", default="runs")
    p.set_defaults(func=cmd_migrate)

    p = sub.add_parser("import", help="read official RLIPv2 pseudo-label JSON into a run's shards")
    p.add_argument("source", help="the pseudo-label JSON (a list of {image_id, dataset, data_split, objects, ...})")
    p.add_argument("--run", required=True, help="name of the run to create under --output")
    p.add_argument("--output", default="runs")
    p.add_argument("--images", help="image root: fills width/height from the image headers")
    p.add_argument("--image-paths", help="Objects365 image_id_to_filepath.json (default: beside the JSON)")
    p.add_argument("--part-size", type=int, default=1000, help="images per shard part")
    p.set_defaults(func=cmd_import)
