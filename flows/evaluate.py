"""The ``evaluate`` Prefect flow: a checkpoint over a downstream benchmark.

Runs :func:`stages.train.evaluate.evaluate_checkpoint` (inference, then the
HICO-DET / V-COCO / Open Images evaluators); the result is written as JSON
beside the checkpoint and printed as a table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, task


@task(name="evaluate-checkpoint", task_run_name="evaluate-{benchmark}")
def evaluate_task(checkpoint: str, benchmark: str, annotations: str, images: str,
                  options: dict[str, Any]) -> dict[str, Any]:
    from stages.train.evaluate import evaluate_checkpoint

    paths = {k: (Path(v) if v is not None and k in _PATH_OPTIONS else v) for k, v in options.items()}
    result, path = evaluate_checkpoint(Path(checkpoint), benchmark, Path(annotations), Path(images), **paths)
    return {"result": result.to_dict(), "path": str(path)}


_PATH_OPTIONS = {"meta", "coco_instances", "object_names", "predicate_names"}


@flow(name="evaluate", log_prints=True)
def evaluate_flow(checkpoint: str, benchmark: str, annotations: str, images: str,
                  options: dict[str, Any] | None = None) -> dict[str, Any]:
    from stages.evaluation import EvalResult, format_table

    out = evaluate_task(checkpoint, benchmark, annotations, images, dict(options or {}))
    print(format_table(EvalResult.from_dict(out["result"])))
    print(f"written to {out['path']}")
    return out
