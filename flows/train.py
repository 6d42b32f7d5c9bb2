"""The ``train`` Prefect flow: RLIPv2 pre-training, R-Tagger training or fine-tuning.

The flow only wires: it validates the config, runs the training loop
(:func:`stages.train.engine.train`) in this process or on a Ray cluster through
Ray Train's ``TorchTrainer``, and returns a summary. Re-running a flow whose
output already holds a training state resumes it exactly.
"""

from __future__ import annotations

from typing import Any, Literal

from prefect import flow, task

from stages.train.config import load_train_config


@task(name="train-model", task_run_name="train-{mode}")
def train_task(config: dict[str, Any], mode: str) -> dict[str, Any]:
    from stages.train.engine import train

    result = train(load_train_config(config))
    return {"output": str(result.output), "step": result.step, "total_steps": result.total_steps,
            "steps_per_epoch": result.steps_per_epoch, "final_loss": result.final_loss,
            "images_per_second": result.images_per_second, "skipped_images": result.skipped_images,
            "checkpoint": str(result.checkpoint) if result.checkpoint else None}


@task(name="train-model-ray", task_run_name="train-{mode}-ray")
def train_ray_task(config: dict[str, Any], mode: str, workers: int, use_gpu: bool,
                   address: str | None) -> dict[str, Any]:
    from stages.train.ray_train import train_with_ray

    cfg = load_train_config(config)
    metrics = train_with_ray(cfg, num_workers=workers, use_gpu=use_gpu, address=address)
    return {"output": str(cfg.output), **metrics}


@flow(name="train", log_prints=True)
def train_flow(config: dict[str, Any], launcher: Literal["local", "ray"] = "local", workers: int = 1,
               use_gpu: bool = False, ray_address: str | None = None) -> dict[str, Any]:
    cfg = load_train_config(config)
    config = cfg.model_dump(mode="json")
    sources = ", ".join(f"{s.kind}:{s.path} (x{s.weight:g})" for s in cfg.sources)
    print(f"{cfg.mode} into {cfg.output} from {sources}")
    if launcher == "ray":
        summary = train_ray_task(config, cfg.mode, workers, use_gpu, ray_address)
    else:
        summary = train_task(config, cfg.mode)
    print(f"done: step {summary.get('step')}, loss {summary.get('final_loss')}, "
          f"{summary.get('images_per_second', 0):.2f} images/s")
    return summary
