"""What crash safety costs: a coco-mini labelling run with and without it.

Three variants of the same run (oracle captions, greedy tagger, local executor):

* ``safe``    the default: temp file + fsync + rename for every file, fsync of the
              directory, a commit marker with sha256 checksums per part;
* ``no-fsync`` ``fsync=False``: atomic renames and markers kept, nothing forced to disk
              (a crash of the process is still safe, a power cut may lose the last parts);
* ``bare``    fsync off, files written in place, no checksums in the markers: what
              the run would cost with no crash safety at all (bench-only patch).

Each variant runs ``--repeats`` times into a fresh directory after one warm-up run
(which loads spaCy and the caption index), and the median wall time is reported,
with the time spent inside the part store's writes.

    .venv/bin/python bench/crash_overhead.py [--part-size 16] [--repeats 5]

Needs ../shared/data/coco-mini (80 COCO images with their annotations and captions).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import storage.atomic as atomic  # noqa: E402
import storage.parts as parts  # noqa: E402
from pipeline.config import RunConfig, load_config  # noqa: E402
from pipeline.label import run_label  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "coco-mini"


def coco_mini_config(data: Path, output: Path, name: str, part_size: int, fsync: bool) -> RunConfig:
    return load_config({
        "name": name, "output": str(output), "part_size": part_size, "executor": "local", "fsync": fsync,
        "reuse_runs": False,  # every run computes everything: it is what is being timed
        "dataset": {"kind": "coco", "annotations": str(data / "annotations/instances_train2017.json"),
                    "images": str(data / "train2017")},
        "caption": {"backend": "oracle", "captions_file": str(data / "annotations/captions_train2017.json"),
                    "n_captions": 5},
        "tag": {"tagger": "greedy"},
    })


@contextlib.contextmanager
def without_crash_safety() -> Iterator[None]:
    """Write files in place and skip checksums: the machinery switched off, for comparison only."""
    saved = atomic.atomic_write, parts.sha256_file

    def write_in_place(path: Path, write: Callable[[Path], None], *, fsync: bool = True,
                       fault_label: str | None = None) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        write(Path(path))

    atomic.atomic_write = write_in_place
    parts.atomic_write = write_in_place
    parts.sha256_file = lambda path: ""
    try:
        yield
    finally:
        atomic.atomic_write, parts.sha256_file = saved
        parts.atomic_write = saved[0]


@contextlib.contextmanager
def timed_writes(totals: dict[str, float]) -> Iterator[None]:
    """Accumulate the time spent in StageStore.write_part (rows, errors, marker)."""
    original = parts.StageStore.write_part

    def write_part(self: Any, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(self, *args, **kwargs)
        finally:
            totals["write"] = totals.get("write", 0.0) + time.perf_counter() - started

    parts.StageStore.write_part = write_part
    try:
        yield
    finally:
        parts.StageStore.write_part = original


def one_run(data: Path, workdir: Path, name: str, part_size: int, fsync: bool, bare: bool) -> tuple[float, float]:
    cfg = coco_mini_config(data, workdir, name, part_size, fsync)
    totals: dict[str, float] = {}
    guard = without_crash_safety() if bare else contextlib.nullcontext()
    with guard, timed_writes(totals):
        started = time.perf_counter()
        _, manifest = run_label(cfg)
        seconds = time.perf_counter() - started
    assert manifest["stages"]["shard"]["state"] == "complete" and manifest["stages"]["shard"]["rows"] == 80
    return seconds, totals.get("write", 0.0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--part-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--workdir", type=Path, default=None, help="where runs are written (default: a temp dir)")
    args = parser.parse_args()
    if not (args.data / "annotations" / "instances_train2017.json").is_file():
        print(f"coco-mini not found at {args.data}", file=sys.stderr)
        return 2
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="relfactory-crash-bench-"))
    variants = {"safe": (True, False), "no-fsync": (False, False), "bare": (False, True)}
    one_run(args.data, workdir, "warmup", args.part_size, True, False)
    results: dict[str, list[tuple[float, float]]] = {v: [] for v in variants}
    for repeat in range(args.repeats):
        for variant, (fsync, bare) in variants.items():  # interleaved, so drift hits every variant alike
            results[variant].append(one_run(args.data, workdir, f"{variant}-{repeat}", args.part_size, fsync, bare))
    n_parts = -(-80 // args.part_size)
    print(f"coco-mini: 80 images, {n_parts} parts x 6 stages = {6 * n_parts} committed parts per run; "
          f"median of {args.repeats} runs (local executor, oracle captions, greedy tagger)")
    print(f"{'variant':<10} {'run s':>8} {'writes s':>9}")
    median = {}
    for variant, runs in results.items():
        median[variant] = statistics.median(s for s, _ in runs)
        print(f"{variant:<10} {median[variant]:>8.3f} {statistics.median(w for _, w in runs):>9.3f}")
    print(f"safe / no-fsync = {median['safe'] / median['no-fsync']:.3f}")
    print(f"safe / bare     = {median['safe'] / median['bare']:.3f}")
    print(f"no-fsync / bare = {median['no-fsync'] / median['bare']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
