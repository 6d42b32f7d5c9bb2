"""``relfactory label`` after its arguments are parsed: run the pipeline, then say what happened.

Shared by the CLI and the demo, so the demo does not reach into the CLI module
(which imports the demo). The summary tells the truth about where each part came
from: computed now, adopted from a sibling run, or already in this run.
"""

from __future__ import annotations

from typing import Any

from pipeline.config import RunConfig
from pipeline.contracts import STAGE_ORDER


def label_and_report(cfg: RunConfig, orchestrator: str) -> int:
    """Label with the Prefect flow (``prefect``) or directly (``none``), then print the summary."""
    if orchestrator == "prefect":
        from flows.pseudo_label import pseudo_label

        manifest = pseudo_label(cfg.model_dump(mode="json"), progress=True)
    else:
        from pipeline.label import run_label

        _, manifest = run_label(cfg, progress=True)
    print_run_summary(manifest)
    return 0


def run_summary_lines(manifest: dict[str, Any]) -> list[str]:
    """The headline of what this invocation did, then one line per stage in flow order."""
    inv = manifest["this_invocation"]
    run = manifest["run"]
    adopted_from: dict[str, dict[str, int]] = inv.get("adopted_from", {})
    adopted_clause = "; ".join(f"adopted {sum(by_stage.values())} parts from run {other} "
                               f"({', '.join(f'{stage} {n}' for stage, n in by_stage.items())})"
                               for other, by_stage in adopted_from.items())
    if inv["parts_computed"] == 0:
        headline = (f"run {run}: {adopted_clause}; nothing computed" if adopted_clause
                    else f"run {run}: up to date — every stage was cached, no work done")
    else:
        total = manifest["n_parts"] * (len(manifest["stages"]) - 1)  # stages after ingest
        adopted_here = sum(n for by_stage in adopted_from.values() for stage, n in by_stage.items()
                           if stage != "ingest")
        cached = total - inv["parts_computed"] - adopted_here
        by_stage = ", ".join(f"{stage} {count}" for stage, count in inv["parts_computed_by_stage"].items())
        headline = (f"run {run}: computed {inv['parts_computed']} of {total} stage parts ({by_stage}); "
                    + (f"{adopted_clause}; " if adopted_clause else "")
                    + f"{cached} already in this run; {inv['retried_parts']} needed a retry")
    lines = [headline]
    for stage in STAGE_ORDER:
        info = manifest["stages"].get(stage)
        if info is None:
            continue
        reasons = ", ".join(f"{k}={v}" for k, v in info["error_reasons"].items())
        lines.append(f"  {stage:<8} {info['state']:<9} rows={info['rows']:<7} errors={info['errors']}"
                     + (f" ({reasons})" if reasons else ""))
    return lines


def print_run_summary(manifest: dict[str, Any]) -> None:
    print("\n".join(run_summary_lines(manifest)))
