"""Run the labelling pipeline without Prefect: lock, plan, execute, finalise.

The Prefect flow (flows/pseudo_label.py) does the same steps with each unit as a
Prefect task; this entry point is for tests, scripts and ``--orchestrator none``.
"""

from __future__ import annotations

import logging
from typing import Any

from pipeline.config import RunConfig
from pipeline.executors import run_local, run_ray
from pipeline.lock import RunLock
from pipeline.runner import RunPlan, finalize, plan_run

log = logging.getLogger("relfactory")


def run_label(cfg: RunConfig, *, progress: bool = False) -> tuple[RunPlan, dict[str, Any]]:
    """Label ``cfg.dataset`` into ``cfg.run_dir``; returns the plan and the manifest."""
    with RunLock(cfg.run_dir):
        plan = plan_run(cfg)
        if plan.nothing_to_do:
            log.info("run %s is up to date: every stage is cached, nothing to do", cfg.name)
            return plan, finalize(plan, [])
        log.info("plan for run %s:\n%s", cfg.name, plan.describe())
        runner = run_ray if cfg.executor == "ray" else run_local
        summaries = runner(plan, progress=progress)
        return plan, finalize(plan, summaries)
