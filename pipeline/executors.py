"""Executors run the plan's (stage, part) units: in this process, or on Ray.

Both honour the same dependency rule: a part's stage runs after that part's
input stages, so parts flow through the stages independently (part 3 may be
tagging while part 7 is still being captioned). On Ray each unit is a remote task
with retries, so a worker that dies mid-task is replaced and the unit re-run;
stages that use a model ask Ray for a GPU when the cluster has one.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from pipeline.config import RunConfig
from pipeline.progress import StageProgress
from pipeline.ray_start import start_ray
from pipeline.runner import RunPlan, execute_part
from pipeline.stage_specs import PART_STAGES, STAGES

# Ray re-runs a unit whose worker process died this many times.
RAY_TASK_RETRIES = 3


def units(plan: RunPlan) -> Iterator[tuple[str, int]]:
    """(stage, part) units in dependency order: part-major, so parts pipeline."""
    return units_of(plan.todo, range(plan.n_parts))


def units_of(todo: dict[str, list[int]], parts: Iterable[int]) -> Iterator[tuple[str, int]]:
    """The units of ``todo`` among ``parts``, part-major in stage order."""
    wanted = {stage: set(todo.get(stage, [])) for stage in PART_STAGES}
    for part in parts:
        for stage in PART_STAGES:
            if part in wanted[stage]:
                yield stage, part


def run_local(plan: RunPlan, progress: bool = False) -> list[dict[str, Any]]:
    todo = list(units(plan))
    results = []
    with StageProgress(plan.cfg.name, todo, enabled=progress) as bars:
        for stage, part in todo:
            results.append(execute_part(plan.cfg, stage, part, plan.keys))
            bars.done(results[-1])
    return results


def ensure_ray(address: str | None, workers: int) -> None:
    """Connect to Ray (started locally unless ``address`` names a cluster); one clear error if it cannot."""
    start_ray(address, workers)


def _remote_execute_part(cfg_json: dict, stage: str, part: int, keys: dict[str, str], *_deps: Any) -> dict[str, Any]:
    return execute_part(RunConfig.model_validate(cfg_json), stage, part, keys)


@functools.cache
def ray_unit() -> Any:
    """The remote function that runs one (stage, part) on a Ray worker."""
    import ray

    return ray.remote(_remote_execute_part)


def ray_options(cfg: RunConfig, stage: str, cluster_gpus: float) -> dict[str, Any]:
    """Resources and retries of one unit: one CPU, and a GPU for model stages when the cluster has one."""
    options: dict[str, Any] = {"max_retries": RAY_TASK_RETRIES, "num_cpus": 1}
    if cluster_gpus and STAGES[stage].wants_gpu(cfg):
        options["num_gpus"] = 1
    return options


def worker_error(exc: Exception) -> Exception:
    """The stage's own exception (e.g. a full disk, with its errno) instead of Ray's wrapper."""
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, Exception) else exc


def submit_ray(plan: RunPlan) -> dict[tuple[str, int], Any]:
    """Submit every unit to Ray with its same-part dependencies; returns the refs."""
    return submit_units(plan.cfg, units(plan), plan.keys)


def submit_units(cfg: RunConfig, todo: Iterable[tuple[str, int]], keys: dict[str, str]) -> dict[tuple[str, int], Any]:
    """Submit ``todo`` (part-major units) to Ray; a unit waits on the refs of its part's input stages."""
    import ray

    ensure_ray(cfg.ray_address, cfg.workers)
    gpus = ray.cluster_resources().get("GPU", 0)
    cfg_json = cfg.model_dump(mode="json")
    refs: dict[tuple[str, int], Any] = {}
    for stage, part in todo:
        deps = [refs[(inp, part)] for inp in STAGES[stage].inputs if (inp, part) in refs]
        options = ray_options(cfg, stage, gpus)
        refs[(stage, part)] = ray_unit().options(**options).remote(cfg_json, stage, part, keys, *deps)
    return refs


def wait_ray(refs: dict[tuple[str, int], Any], on_done: Callable[[dict[str, Any]], None]) -> list[dict[str, Any]]:
    """Collect the units' summaries as they finish; the first failure cancels the rest and is raised."""
    import ray

    pending = list(refs.values())
    results = []
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        try:
            finished = ray.get(done)
        except ray.exceptions.RayTaskError as exc:
            # The caller releases the run lock next: no task of this run may still be writing then.
            for ref in pending:
                ray.cancel(ref, force=True)
            raise worker_error(exc) from None
        results.extend(finished)
        for summary in finished:
            on_done(summary)
    return results


def run_ray(plan: RunPlan, progress: bool = False) -> list[dict[str, Any]]:
    refs = submit_ray(plan)
    with StageProgress(plan.cfg.name, refs, enabled=progress) as bars:
        return wait_ray(refs, bars.done)
