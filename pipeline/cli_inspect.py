"""Inspection subcommands of ``relfactory``: inspect, show, report, diff.

A run is named either by its name under ``--output`` or by its folder path, so
runs copied from another machine can be inspected where they land; ``--images``
points at the photos when the run's recorded image folder is not here.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from pipeline.contracts import STAGE_ORDER


def _emit(text: str) -> None:
    """Print, treating a reader that stopped early (``| head``) as done rather than as an error."""
    try:
        print(text)
        sys.stdout.flush()
    except BrokenPipeError:
        # Python would report the closed pipe again at exit while flushing; point stdout at nothing.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _run_dir(args: argparse.Namespace, name: str | None = None) -> Path:
    from storage.run_reader import resolve_run_dir

    return resolve_run_dir(name or args.run, args.output)


def cmd_inspect(args: argparse.Namespace) -> int:
    from storage.inspect import inspect_run
    from storage.inspect_details import follow_image, list_errors
    from storage.run_reader import RunReader

    run_dir = _run_dir(args)
    if args.stage and args.stage not in STAGE_ORDER:
        print(f"relfactory: unknown stage {args.stage!r}; stages are: {', '.join(STAGE_ORDER)}", file=sys.stderr)
        return 2
    reader = RunReader(run_dir, images=args.images)
    if args.image is not None:
        _emit(follow_image(reader, args.image))
    elif args.errors is not None:
        stages = [args.stage] if args.stage else reader.stages()
        _emit(list_errors(reader, stages, reason=args.errors or None, limit=args.limit))
    else:
        _emit(inspect_run(run_dir, stage=args.stage, sample=args.sample))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from storage.show import show_image

    dest, drawing = show_image(_run_dir(args), args.image, args.stage, Path(args.out) if args.out else None,
                               images=args.images)
    print(f"wrote {dest}: image {drawing.image_id}, {len(drawing.boxes)} boxes, "
          f"{len(drawing.arrows)} {'candidate pairs' if args.stage == 'match' else 'related pairs'}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from storage.report import write_report

    dest = write_report(_run_dir(args), Path(args.out) if args.out else None, images=args.images,
                        gallery=args.gallery)
    print(f"wrote {dest}")
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    from storage.diff import diff_runs, format_diff, write_diff_json

    diff = diff_runs(_run_dir(args, args.run_a), _run_dir(args, args.run_b), stage=args.stage)
    _emit(format_diff(diff, examples=args.examples))
    if args.json:
        write_diff_json(diff, Path(args.json))
    return 0


def add_inspect_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("inspect", help="inspect a run's stage outputs, errors, or one image through every stage")
    p.add_argument("run", help="run name under --output, or a run folder")
    p.add_argument("--stage", help="one stage (default: all)")
    p.add_argument("--sample", type=int, default=3, help="sample rows to show")
    p.add_argument("--errors", nargs="?", const="", metavar="REASON",
                   help="list error rows with their details (only REASON's when given)")
    p.add_argument("--limit", type=int, default=20, help="error rows to list with --errors")
    p.add_argument("--image", type=int, metavar="ID", help="follow one image through every stage")
    p.add_argument("--images", type=Path, metavar="DIR", help="image folder, when the run was made elsewhere")
    p.add_argument("--output", default="runs")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("show", help="draw one image's boxes and relations to PNG")
    p.add_argument("run", help="run name under --output, or a run folder")
    p.add_argument("--image", type=int, metavar="ID", help="image id (default: the one with most relations)")
    p.add_argument("--stage", choices=["tag", "shard", "match"], default="tag",
                   help="tag/shard: tagged relations; match: candidate pairs")
    p.add_argument("--out", help="PNG file (default: <run>-<image>-<stage>.png here)")
    p.add_argument("--images", type=Path, metavar="DIR", help="image folder, when the run was made elsewhere")
    p.add_argument("--output", default="runs")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("report", help="write a self-contained HTML report of a run")
    p.add_argument("run", help="run name under --output, or a run folder")
    p.add_argument("--out", help="HTML file (default: <run>/report.html)")
    p.add_argument("--gallery", type=int, default=8, help="sample images drawn in the report")
    p.add_argument("--images", type=Path, metavar="DIR", help="image folder, when the run was made elsewhere")
    p.add_argument("--output", default="runs")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("diff", help="relations added/removed between two runs")
    p.add_argument("run_a", help="run name under --output, or a run folder")
    p.add_argument("run_b")
    p.add_argument("--stage", choices=["shard", "tag"], default="shard")
    p.add_argument("--examples", type=int, default=5, help="example relations listed per direction")
    p.add_argument("--json", help="also write the full diff as JSON here")
    p.add_argument("--output", default="runs")
    p.set_defaults(func=cmd_diff)
