"""Prefect artifacts of a labelling run: a table per stage and a markdown summary linking the report.

Keys depend only on the run's name (``relfactory-<run>-<stage>``,
``relfactory-<run>-summary``), so every run of the same name adds a version to
the same artifact and the Prefect UI shows its history. Publishing is a
by-product: a failure to write the report or an artifact only logs a warning.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from pipeline.config import RunConfig

log = logging.getLogger("relfactory")


def artifact_key(run: str, suffix: str) -> str:
    """A Prefect artifact key (lowercase letters, digits and dashes) for a run's artifact."""
    slug = re.sub(r"[^a-z0-9-]+", "-", f"relfactory-{run}-{suffix}".lower())
    return re.sub(r"-{2,}", "-", slug).strip("-")


def stage_table(stage: str, info: dict[str, Any], summaries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows of a stage's table: the whole stage first, then each part computed by this invocation."""
    computed = [s for s in summaries if s.get("stage") == stage and not s.get("skipped")]
    seconds = sum(s.get("seconds", 0.0) for s in computed)
    rows_done = sum(s.get("rows", 0) for s in computed)
    table = [{
        "part": "all", "state": info.get("state"), "parts": f"{info.get('parts_committed', 0)}/{info.get('parts', 0)}",
        "rows": info.get("rows", 0), "errors": info.get("errors", 0),
        "error_reasons": ", ".join(f"{k}={v}" for k, v in (info.get("error_reasons") or {}).items()) or "-",
        "computed_parts": len(computed), "compute_s": round(seconds, 3),
        "rows_per_s": round(rows_done / seconds, 2) if seconds else None,
    }]
    for s in sorted(computed, key=lambda s: s["part"]):
        table.append({"part": s["part"], "state": "computed", "parts": "", "rows": s.get("rows", 0),
                      "errors": s.get("errors", 0), "error_reasons": "", "computed_parts": 1,
                      "compute_s": s.get("seconds"), "attempts": s.get("attempts", 1),
                      "rows_per_s": round(s["rows"] / s["seconds"], 2) if s.get("seconds") else None})
    return table


def summary_markdown(manifest: dict[str, Any], report: Path | None) -> str:
    inv = manifest.get("this_invocation") or {}
    lines = [f"# relfactory run `{manifest.get('run')}`", "",
             f"config hash `{manifest.get('config_hash')}` · {manifest.get('n_parts')} parts · "
             f"{inv.get('parts_computed', 0)} stage parts computed, {inv.get('retried_parts', 0)} retried", "",
             "| stage | state | rows | errors | error reasons |", "|---|---|---|---|---|"]
    for stage, info in (manifest.get("stages") or {}).items():
        reasons = ", ".join(f"{k}={v}" for k, v in (info.get("error_reasons") or {}).items()) or "-"
        lines.append(f"| {stage} | {info.get('state')} | {info.get('rows')} | {info.get('errors')} | {reasons} |")
    lines.append("")
    if report is not None:
        lines.append(f"Report: [{report.name}]({report.resolve().as_uri()}) (`{report}`)")
    else:
        lines.append(f"Report: `relfactory report {manifest.get('run')}` writes it.")
    return "\n".join(lines)


def publish_run_artifacts(cfg: RunConfig, manifest: dict[str, Any], summaries: list[dict[str, Any]],
                          write_report: bool = True) -> dict[str, str]:
    """Create the run's artifacts in the current Prefect flow run; returns {key: artifact id}."""
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    report = _report_for(cfg, manifest) if write_report else None
    created: dict[str, str] = {}
    try:
        for stage, info in (manifest.get("stages") or {}).items():
            key = artifact_key(cfg.name, stage)
            created[key] = str(create_table_artifact(
                stage_table(stage, info, summaries), key=key,
                description=f"{stage} of run {cfg.name}: counts, errors and throughput"))
        key = artifact_key(cfg.name, "summary")
        created[key] = str(create_markdown_artifact(summary_markdown(manifest, report), key=key,
                                                    description=f"summary of run {cfg.name}"))
    except Exception as exc:  # noqa: BLE001 - artifacts are a view of a finished run, never a reason to fail it
        log.warning("could not publish the Prefect artifacts of run %s: %s", cfg.name, exc)
    return created


# The report reads every committed row: at a million images that is ~0.9 GB the flow
# process would keep for its lifetime (bench/scale.py), so large runs write it in a child.
REPORT_IN_CHILD_IMAGES = 50_000


def _report_for(cfg: RunConfig, manifest: dict[str, Any]) -> Path | None:
    if (manifest.get("ingest") or {}).get("images", 0) <= REPORT_IN_CHILD_IMAGES:
        return _write_report(cfg)
    from pipeline.large_inputs import call_isolated

    try:
        return call_isolated(_write_report, cfg)
    except Exception as exc:  # noqa: BLE001 - a by-product, like _write_report's own failures
        log.warning("could not write the report of run %s: %s", cfg.name, exc)
        return None


def _write_report(cfg: RunConfig) -> Path | None:
    from pipeline.datasets import image_root
    from storage.report import write_report

    try:
        return write_report(cfg.run_dir, images=image_root(cfg.dataset), gallery=4)
    except (OSError, ValueError) as exc:
        log.warning("could not write the report of run %s: %s", cfg.name, exc)
        return None
