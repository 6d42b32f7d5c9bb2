"""Throughput and fixed costs of one labelling flow at 10 k / 100 k / 1 M images (synthetic Objects365 layout).

    .venv/bin/python bench/scale.py --size 10000:real --size 100000:dry --size 1000000:dry \
        [--workers 2] [--orchestrator prefect] [--data /tmp/relfactory-scale] [--json out.json]

``N:real`` runs the real stages (oracle captions from the caption bank, spaCy
rules parser, matcher, layout tagger, shard); ``N:dry`` swaps caption/parse/
match/tag for ``bench.dry_stages`` (no models; parts are still read, written and
committed in the real volume), which is how 100 k images fit a shared 2-core
machine; ``N:noop`` commits empty parts (planning, ingest and orchestration only:
the 1 M run). Datasets are generated under ``--data`` (bench/synthetic_dataset.py)
on first use. Each run is a fresh ``relfactory label`` process with its own
PREFECT_HOME (a temporary Prefect server on SQLite) and output folder; after it,
the same command is run again to time an up-to-date re-plan (every marker of
every part is checked: what a resume pays before computing anything; ``re-plan``
is that planning, ``re-run`` the whole command, Python start-up included).

Columns: ``wall`` is the label command's wall time; ``plan`` the time to plan
(ingest included); ``exec`` from the end of the flow's planning to finalize;
``compute`` the sum over units of their seconds inside the workers (read inputs,
stage function, write and commit); ``overhead`` = exec x workers / compute, i.e.
worker-seconds the run used per worker-second of stage work (1.0 = the workers
did nothing but stage work); ``driver RSS`` the labelling process's own peak
resident set (not Ray's or the Prefect server's); ``task runs`` and ``db`` the
Prefect database's; ``files`` everything under the run folder.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if __name__ == "__main__" and "--child" not in sys.argv:
    sys.path.insert(0, str(ROOT))


def ensure_dataset(data: Path, n_images: int) -> Path:
    folder = data / f"o365-{n_images}"
    if not (folder / "SUMMARY.json").is_file():
        from bench.synthetic_dataset import generate

        print(f"generating {n_images} images under {folder} ...", flush=True)
        generate(folder, n_images)
    return folder


def label_args(dataset: Path, run: str, output: Path, workers: int, orchestrator: str,
               part_size: int | None) -> list[str]:
    args = ["label", "--dataset-kind", "objects365", "--annotations", str(dataset / "zhiyuan_objv2_train.json"),
            "--images", str(dataset / "images"), "--captioner", "oracle", "--captions-file",
            str(dataset / "captions.json"), "--run", run, "--output", str(output), "--workers", str(workers),
            "--orchestrator", orchestrator, "--no-reuse"]
    return args + (["--part-size", str(part_size)] if part_size else [])


def child(args: list[str], result_file: Path) -> None:
    """Run the CLI in this process, timing planning and execution; write the figures to ``result_file``."""
    import pipeline.label
    import pipeline.runner

    marks: dict[str, float] = {"start": time.perf_counter()}
    modules = [pipeline.label, pipeline.runner]
    try:
        import flows.pseudo_label

        modules.append(flows.pseudo_label)
    except ImportError:
        pass

    def timed_plan(cfg, _plan=pipeline.runner.plan_run):
        began = time.perf_counter()
        plan = _plan(cfg)
        marks.setdefault("first_plan_s", time.perf_counter() - began)
        marks["last_plan_end"] = time.perf_counter()
        marks["last_plan_s"] = time.perf_counter() - began
        return plan

    def timed_finalize(plan, summaries=None, _finalize=pipeline.runner.finalize):
        marks["finalize_start"] = time.perf_counter()
        return _finalize(plan, summaries)

    for module in modules:
        if hasattr(module, "plan_run"):
            module.plan_run = timed_plan
        if hasattr(module, "finalize"):
            module.finalize = timed_finalize
    from pipeline.cli import main

    code = 0
    try:
        code = main(args) or 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    marks["end"] = time.perf_counter()
    result = {"exit": code, "peak_rss_mb": _vm_hwm_mb(), "first_plan_s": marks.get("first_plan_s"),
              "last_plan_s": marks.get("last_plan_s"), "total_s": marks["end"] - marks["start"]}
    if "finalize_start" in marks and "last_plan_end" in marks:
        result["exec_s"] = marks["finalize_start"] - marks["last_plan_end"]
    manifest = Path(args[args.index("--output") + 1]) / args[args.index("--run") + 1] / "manifest.json"
    if manifest.is_file():
        stage_seconds = json.loads(manifest.read_text()).get("this_invocation", {}).get("stage_seconds", {})
        result["stage_seconds"] = stage_seconds
        result["stage_seconds_total"] = sum(stage_seconds.values())
    result_file.write_text(json.dumps(result))


def _vm_hwm_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_label(args: list[str], env: dict[str, str], code_dir: Path | None) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as fh:
        result_file = Path(fh.name)
    child_env = dict(env)
    if code_dir is not None:
        child_env["PYTHONPATH"] = str(code_dir)
    else:
        child_env["PYTHONPATH"] = str(ROOT)
    began = time.perf_counter()
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", str(result_file), "--", *args],
                          env=child_env, cwd=str(code_dir or ROOT), capture_output=True, text=True)
    wall = time.perf_counter() - began
    try:
        result = json.loads(result_file.read_text())
    except ValueError:
        result = {"exit": proc.returncode}
    result_file.unlink(missing_ok=True)
    if result.get("exit") or proc.returncode:
        raise RuntimeError(f"label failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    result["wall_s"] = wall
    return result


def prefect_db(home: Path) -> tuple[float, int]:
    """Size of the Prefect database (with its WAL) in MB and its task-run count."""
    db = home / "prefect.db"
    size = sum(p.stat().st_size for p in home.glob("prefect.db*")) / 2**20 if db.exists() else 0.0
    if not db.exists():
        return size, 0
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return size, conn.execute("select count(*) from task_run").fetchone()[0]


def count_files(folder: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(folder))


def measure(n_images: int, mode: str, opts: argparse.Namespace) -> dict[str, Any]:
    dataset = ensure_dataset(opts.data, n_images)
    work = Path(tempfile.mkdtemp(prefix=f"scale-{n_images}-", dir=opts.data))
    home, output = work / "prefect-home", work / "runs"
    home.mkdir()
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "600", "RAY_AUTH_MODE": "disabled",
           "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("PREFECT_API_URL", None)
    if mode in ("dry", "noop"):
        from bench.dry_stages import DRY_STAGES, NOOP_STAGES

        env["RELFACTORY_STAGE_FUNCTIONS"] = DRY_STAGES if mode == "dry" else NOOP_STAGES
    run = f"scale-{n_images}-{mode}"
    args = label_args(dataset, run, output, opts.workers, opts.orchestrator, opts.part_size)
    load_before = os.getloadavg()[0]
    first = run_label(args, env, opts.code)
    load_after = os.getloadavg()[0]
    replan = run_label(args, env, opts.code)
    manifest = json.loads((output / run / "manifest.json").read_text())
    db_mb, task_runs = prefect_db(home)
    compute = first.get("stage_seconds_total")  # the first run's: the re-run rewrote this_invocation
    result = {
        "images": n_images, "mode": mode, "workers": opts.workers, "orchestrator": opts.orchestrator,
        "n_parts": manifest["n_parts"], "wall_s": first["wall_s"], "plan_s": first.get("first_plan_s"),
        "exec_s": first.get("exec_s"), "compute_s": compute, "peak_rss_mb": first["peak_rss_mb"],
        "prefect_db_mb": db_mb, "task_runs": task_runs, "files": count_files(output / run),
        "replan_s": replan.get("first_plan_s"), "replan_wall_s": replan["wall_s"],
        "load_before": load_before, "load_after": load_after,
        "stage_seconds": first.get("stage_seconds"), "work_dir": str(work),
    }
    return result


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--child":
        child(argv[3:], Path(argv[1]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", action="append", default=[], help="N:real, N:dry or N:noop (repeatable)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--orchestrator", choices=["prefect", "none"], default="prefect")
    parser.add_argument("--part-size", type=int, default=None, help="default: chosen from the dataset size")
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "relfactory-scale")
    parser.add_argument("--code", type=Path, default=None, help="run another checkout's code (a baseline)")
    parser.add_argument("--json", type=Path, default=None)
    opts = parser.parse_args(argv)
    opts.data.mkdir(parents=True, exist_ok=True)
    results = []
    for spec in opts.size or ["10000:real", "100000:dry"]:
        n, _, mode = spec.partition(":")
        results.append(measure(int(n), mode or "real", opts))
        print(json.dumps(results[-1]), flush=True)
        if opts.json:
            opts.json.write_text(json.dumps(results, indent=2) + "\n")
    print_table(results)
    return 0


def print_table(results: list[dict[str, Any]]) -> None:
    header = ("images", "stages", "parts", "wall s", "plan s", "exec s", "compute s", "overhead", "driver RSS MB",
              "task runs", "db MB", "files", "re-plan s", "re-run s", "load")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for r in results:
        overhead = r["exec_s"] * r["workers"] / r["compute_s"] if r.get("exec_s") and r.get("compute_s") else None
        cells = (f"{r['images']:,}", r["mode"], f"{r['n_parts']:,}", _f(r["wall_s"]), _f(r["plan_s"]),
                 _f(r["exec_s"]), _f(r["compute_s"]), _f(overhead, 2), _f(r["peak_rss_mb"], 0),
                 f"{r['task_runs']:,}", _f(r["prefect_db_mb"]), f"{r['files']:,}", _f(r["replan_s"]),
                 _f(r.get("replan_wall_s")),
                 f"{r['load_before']:.0f}-{r['load_after']:.0f}")
        print("| " + " | ".join(str(c) for c in cells) + " |")


def _f(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


if __name__ == "__main__":
    raise SystemExit(main())
