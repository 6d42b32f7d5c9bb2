"""Human-readable views of runs and stage outputs (``relfactory runs`` / ``inspect``).

Everything streams batch by batch over the committed parts, so inspecting a
run over Objects365 does not load it into memory.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from pipeline.contracts import STAGE_ORDER
from storage.inspect_details import stage_statistics
from storage.run_reader import RunReader
from storage.schemas import schema_for


def _manifest(run_dir: Path) -> dict | None:
    try:
        return json.loads((run_dir / "manifest.json").read_text())
    except (OSError, ValueError):
        return None


def list_runs(output: Path) -> str:
    if not output.is_dir():
        return f"no runs under {output}"
    lines = []
    for run_dir in sorted(p for p in output.iterdir() if p.is_dir() and not p.name.startswith(".")):
        manifest = _manifest(run_dir)
        if manifest is None:
            lines.append(f"{run_dir.name}: no manifest (never finished planning)")
            continue
        lock = " [LOCKED: running]" if (run_dir / ".lock").exists() else ""
        lines.append(f"{run_dir.name}  updated {manifest['updated_at']}{lock}")
        # Flow order, not the manifest's (its keys are written sorted).
        stages = manifest["stages"]
        lines.extend(f"    {s:<8} {stages[s]['state']:<9} rows={stages[s]['rows']:<8} errors={stages[s]['errors']}"
                     for s in STAGE_ORDER if s in stages)
    return "\n".join(lines) or f"no runs under {output}"


def _relation_texts(stage: str, row: dict) -> list[str]:
    if stage == "parse":
        return [t["relation"] for t in row["triplets"] or []]
    if stage == "match":
        return [p["relation"] for pair in row["pairs"] or [] for p in pair["proposals"] or []]
    if stage in ("tag", "shard"):
        return [r["predicate"] for r in row["relationships"] or []]
    return []


def inspect_stage(run_dir: Path, stage: str, sample: int = 3, top: int = 15, reader: RunReader | None = None) -> str:
    reader = reader or RunReader(run_dir)
    if not reader.has_stage(stage):
        return f"== {stage}: not computed"
    schema = schema_for(stage)
    out = [f"== {stage}  ({len(reader.part_files(stage))} committed parts)",
           "schema: " + ", ".join(f"{f.name}: {f.type}" for f in schema)]
    rows = 0
    histogram: Counter = Counter()
    samples = []
    for row in reader.rows(stage):
        rows += 1
        histogram.update(_relation_texts(stage, row))
        if len(samples) < sample:
            samples.append(row)
    errors = Counter(r["reason"] for r in reader.errors(stage))
    out.append(f"rows: {rows}   errors: {sum(errors.values())}")
    for reason, count in errors.most_common():
        out.append(f"  error {reason}: {count}")
    out.extend(stage_statistics(reader, stage))
    for row in samples:
        text = json.dumps(row, default=str)
        out.append("sample: " + (text if len(text) < 600 else text[:600] + " ..."))
    if histogram:
        out.append(f"relation texts ({len(histogram)} distinct), top {top}:")
        width = max(len(k) for k, _ in histogram.most_common(top))
        for text, count in histogram.most_common(top):
            out.append(f"  {text:<{width}}  {count}")
    return "\n".join(out)


def inspect_run(run_dir: Path, stage: str | None = None, sample: int = 3) -> str:
    if not run_dir.is_dir():
        return f"no such run: {run_dir}"
    stages = [stage] if stage else list(STAGE_ORDER)
    unknown = [s for s in stages if s not in STAGE_ORDER]
    if unknown:
        return f"unknown stage {unknown[0]!r}; stages are: {', '.join(STAGE_ORDER)}"
    parts = []
    manifest = _manifest(run_dir)
    if manifest and not stage:
        parts.append(f"run {manifest['run']}  config hash {manifest['config_hash']}  parts {manifest['n_parts']}")
    reader = RunReader(run_dir)  # one reader: per-image traces are computed once for every stage
    parts.extend(inspect_stage(run_dir, s, sample=sample, reader=reader) for s in stages)
    return "\n\n".join(parts)

