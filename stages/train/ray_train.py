"""Training on a Ray cluster with Ray Train's ``TorchTrainer``.

Kept apart from :mod:`stages.train.distributed` so that module (the process
group, used by the training loop) does not import the loop: the launcher sits
above both, and the imports read top-down.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from .config import TrainConfig
from .distributed import init_distributed
from .engine import train


def _ray_worker(loop_config: dict[str, Any]) -> None:
    """Runs inside each Ray Train worker, after TorchTrainer set up the process group."""
    import ray.train

    cfg = TrainConfig.model_validate(loop_config["config"])
    ctx = init_distributed(loop_config.get("device", "auto"))
    result = train(cfg, ctx=ctx)
    metrics = {"step": result.step, "total_steps": result.total_steps, "final_loss": result.final_loss,
               "images_per_second": result.images_per_second,
               "checkpoint": str(result.checkpoint) if result.checkpoint else None}
    # Ray Train keeps rank 0's metrics only together with a checkpoint: report a
    # small one naming the model checkpoint the run wrote (every rank must call report).
    with tempfile.TemporaryDirectory() as folder:
        checkpoint = None
        if ctx.is_main:
            (Path(folder) / "summary.json").write_text(json.dumps(metrics))
            checkpoint = ray.train.Checkpoint.from_directory(folder)
        ray.train.report(metrics, checkpoint=checkpoint)


def train_with_ray(cfg: Any, num_workers: int = 1, use_gpu: bool = False, address: str | None = None,
                   cpus_per_worker: int = 1) -> dict[str, Any]:
    """Train on a Ray cluster (the one that ran the labelling, or a local one) with ``TorchTrainer``.

    Every worker writes to ``cfg.output`` only from rank 0, so on several
    nodes the output must be on storage all nodes share.
    """
    import ray
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    if not ray.is_initialized():
        ray.init(address=address, ignore_reinit_error=True, include_dashboard=False, log_to_driver=False)
    output = os.path.abspath(str(cfg.output))
    config = cfg.model_copy(update={"output": output}).model_dump(mode="json")
    trainer = TorchTrainer(
        _ray_worker,
        train_loop_config={"config": config, "device": "auto" if use_gpu else "cpu"},
        scaling_config=ScalingConfig(num_workers=num_workers, use_gpu=use_gpu,
                                     resources_per_worker={"CPU": cpus_per_worker}),
        run_config=RunConfig(name="relfactory-train", storage_path=os.path.join(output, "ray")),
    )
    result = trainer.fit()
    if result.error is not None:
        raise result.error
    return dict(result.metrics or {})
