"""The ``pseudo_label`` Prefect flow: one Prefect task per group of parts, each part's stages on Ray.

Prefect gives the run its schedule, state, retries and UI; Ray gives it the
workers. A Prefect task per (stage, part) cost a task run (API calls, database
rows) per unit, which at Objects365's size is ~133,000 task runs held by one
flow; so a task covers a *group* of consecutive parts (``pipeline.sizing``), and
inside it every (stage, part) unit is a Ray task that waits only for its own
part's input stages, so parts still stream through the stages. Units reach Ray
directly (remote functions), which avoids prefect-ray's per-worker temporary
Prefect servers. Progress bars and unit log lines still advance per unit: the
group tasks run in this process's threads and report each unit as it finishes.
"""

from __future__ import annotations

import concurrent.futures
import logging
import queue
import uuid
from typing import Any

from prefect import flow, task
from prefect.futures import wait
from prefect.task_runners import ThreadPoolTaskRunner

from flows.artifacts import publish_run_artifacts
from flows.prefect_api import prefect_api
from pipeline.config import RunConfig, load_config
from pipeline.executors import ensure_ray, submit_units, units, units_of, wait_ray
from pipeline.lock import RunLock
from pipeline.progress import StageProgress
from pipeline.runner import RunPlan, execute_part, finalize, plan_run
from pipeline.sizing import part_groups

log = logging.getLogger("relfactory")

# Finished-unit summaries from group tasks to the flow's progress bars, by channel id.
# Group tasks run in the flow process's task-runner threads, so a queue is enough.
_CHANNELS: dict[str, queue.SimpleQueue] = {}
POLL_S = 0.2


@task(name="part-group", task_run_name="parts-{first_part}-{last_part}")
def run_part_group(config: dict[str, Any], todo: dict[str, list[int]], keys: dict[str, str],
                   first_part: int, last_part: int, channel: str = "") -> list[dict[str, Any]]:
    """Every unit of ``todo`` (a group's parts), in dependency order; returns the unit summaries."""
    cfg = RunConfig.model_validate(config)
    report = _CHANNELS[channel].put if channel in _CHANNELS else (lambda summary: None)
    group_units = list(units_of(todo, range(first_part, last_part + 1)))
    if cfg.executor != "ray":
        results = []
        for stage, part in group_units:
            results.append(execute_part(cfg, stage, part, keys))
            report(results[-1])
        return results
    return wait_ray(submit_units(cfg, group_units, keys), report)


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
        channel = uuid.uuid4().hex
        _CHANNELS[channel] = queue.SimpleQueue()
        futures = []
        try:
            for group in _groups(plan):
                todo = {stage: [p for p in parts if group[0] <= p <= group[-1]] for stage, parts in plan.todo.items()}
                futures.append(run_part_group.submit(config, todo, plan.keys, group[0], group[-1], channel))
            results: list[dict[str, Any]] = []
            try:
                _collect(futures, _CHANNELS[channel], results, plan, progress)
            finally:
                # Never release the lock while a task may still be writing.
                wait(futures)
        finally:
            _CHANNELS.pop(channel, None)
        manifest = finalize(plan, results)
        publish_run_artifacts(cfg, manifest, results)
        return manifest


def _groups(plan: RunPlan) -> list[list[int]]:
    """Groups of the parts that have any unit to compute."""
    busy = sorted({part for parts in plan.todo.values() for part in parts} & set(range(plan.n_parts)))
    return part_groups(busy, plan.cfg.workers)


def _collect(futures: list, channel: queue.SimpleQueue, results: list, plan: RunPlan, progress: bool) -> None:
    """Advance the bars per unit while groups run; the groups' return values are the results."""
    # Polled through the task runner's own futures: prefect.futures.wait(timeout=...) registers a
    # done-callback on every pending future at every call, which a long run would pile up by millions.
    pending = {future.wrapped_future: future for future in futures}
    with StageProgress(plan.cfg.name, list(units(plan)), enabled=progress) as bars:
        while pending:
            finished, _ = concurrent.futures.wait(list(pending), timeout=POLL_S,
                                                  return_when=concurrent.futures.FIRST_COMPLETED)
            for done in finished:
                pending.pop(done)
            _drain(channel, bars)
        _drain(channel, bars)
        for future in futures:
            results.extend(future.result())


def _drain(channel: queue.SimpleQueue, bars: StageProgress) -> None:
    while True:
        try:
            bars.done(channel.get_nowait())
        except queue.Empty:
            return


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
