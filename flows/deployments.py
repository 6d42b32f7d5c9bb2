"""Scheduled labelling: serve the ``pseudo_label`` flow with a cron schedule.

``relfactory deploy --cron "0 2 * * 0" --config coco.yaml`` registers a deployment
with the Prefect server named by ``PREFECT_API_URL`` (the compose file in docker/
starts one) and serves it from this process: each scheduled run labels the
configured dataset, re-computing only stages whose inputs or config changed.
"""

from __future__ import annotations

from prefect.schedules import Cron

from flows.pseudo_label import pseudo_label_flow
from pipeline.config import RunConfig


def build_deployment(cfg: RunConfig, cron: str, name: str):
    """The deployment object (separate from serving, so it can be checked without a server)."""
    Cron(cron)  # validates the expression early, with croniter's own message
    return pseudo_label_flow.to_deployment(
        name=name,
        schedule=Cron(cron, timezone="UTC"),
        parameters={"config": cfg.model_dump(mode="json")},
        tags=["relfactory", cfg.dataset.kind],
        description=f"relfactory pseudo-labelling of {cfg.dataset.kind} into run {cfg.name!r}",
    )


def serve_labelling(cfg: RunConfig, cron: str, name: str) -> None:
    from prefect import serve

    serve(build_deployment(cfg, cron, name))
