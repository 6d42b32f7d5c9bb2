"""The ``pseudo_label`` Prefect flow: each (stage, part) is a Prefect task run on Ray.

Prefect gives the run its schedule, state, retries and UI; Ray gives it the
workers. Each task submits one unit to Ray directly (a remote function) and waits
for it, which avoids prefect-ray's per-worker temporary Prefect servers. Tasks of
a part wait only for that part's upstream tasks, so parts stream through stages.
"""

from __future__ import annotations

import logging
from typing import Any

from prefect import flow, task
from prefect.futures import as_completed, wait
from prefect.task_runners import ThreadPoolTaskRunner

from flows.artifacts import publish_run_artifacts
from flows.prefect_api import prefect_api
from pipeline.config import RunConfig, load_config
from pipeline.executors import ensure_ray, ray_options, ray_unit, units, worker_error
from pipeline.lock import RunLock
from pipeline.progress import StageProgress
from pipeline.runner import execute_part, finalize, plan_run
from pipeline.stage_specs import STAGES

log = logging.getLogger("relfactory")


@task(name="stage-part", task_run_name="{stage}-part-{part}")
def run_stage_part(config: dict[str, Any], stage: str, part: int, keys: dict[str, str]) -> dict[str, Any]:
    cfg = RunConfig.model_validate(config)
    if cfg.executor != "ray":
        return execute_part(cfg, stage, part, keys)
    import ray

    ensure_ray(cfg.ray_address, cfg.workers)
    options = ray_options(cfg, stage, ray.cluster_resources().get("GPU", 0))
    try:
        return ray.get(ray_unit().options(**options).remote(config, stage, part, keys))
    except ray.exceptions.RayTaskError as exc:
        raise worker_error(exc) from None


@flow(name="pseudo_label", log_prints=True)
def pseudo_label_flow(config: dict[str, Any], progress: bool = False,
                      adopted: dict[str, dict[str, int]] | None = None) -> dict[str, Any]:
    """``adopted``: parts an earlier planning of this same invocation took from sibling runs (for the manifest)."""
    cfg = load_config(config)
    config = cfg.model_dump(mode="json")
    with RunLock(cfg.run_dir):
        plan = plan_run(cfg)
        for run, by_stage in (adopted or {}).items():
            plan.adopted.setdefault(run, {}).update(by_stage)
        if plan.nothing_to_do:
            print(f"run {cfg.name} is up to date: every stage is cached, nothing to do")
        else:
            print(f"plan for run {cfg.name}:\n{plan.describe()}")
            if cfg.executor == "ray":
                # Start Ray from the flow's own thread (a Ray driver started inside a task
                # thread loses its cluster processes once the flow finishes), and only
                # when there is work: starting it costs seconds.
                ensure_ray(cfg.ray_address, cfg.workers)
        futures: dict[tuple[str, int], Any] = {}
        for stage, part in units(plan):
            deps = [futures[(inp, part)] for inp in STAGES[stage].inputs if (inp, part) in futures]
            futures[(stage, part)] = run_stage_part.submit(config, stage, part, plan.keys, wait_for=deps)
        results = []
        try:
            _collect(futures, results, cfg.name, progress)
        finally:
            # Never release the lock while a task may still be writing.
            wait(list(futures.values()))
        manifest = finalize(plan, results)
        publish_run_artifacts(cfg, manifest, results)
        return manifest


def _collect(futures: dict, results: list, name: str, progress: bool) -> None:
    with StageProgress(name, futures, enabled=progress) as bars:
        for future in as_completed(list(futures.values())):
            results.append(future.result())
            bars.done(results[-1])


def pseudo_label(config: dict[str, Any], progress: bool = False) -> dict[str, Any]:
    """Run the flow with enough task threads to keep every Ray worker busy.

    The run is planned first, outside Prefect: inputs are checked before any
    server starts, and a run with nothing to do returns without starting the
    Prefect API or Ray (their start-up is most of an up-to-date re-run's time).
    """
    cfg = load_config(config)
    with RunLock(cfg.run_dir):
        plan = plan_run(cfg)
        if plan.nothing_to_do:
            log.info("run %s is up to date: nothing to orchestrate, Prefect and Ray were not started", cfg.name)
            return finalize(plan, [])
    if cfg.executor == "ray":
        # Before Prefect, in this same thread the flow runs in: a Ray that cannot start is
        # then one line from the CLI, not a failed flow run with Prefect's traceback.
        ensure_ray(cfg.ray_address, cfg.workers)
    runner = ThreadPoolTaskRunner(max_workers=max(2, 2 * cfg.workers))
    with prefect_api():
        return pseudo_label_flow.with_options(task_runner=runner)(config, progress=progress, adopted=plan.adopted)
