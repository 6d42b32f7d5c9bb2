"""After a flow run the Prefect API holds a table artifact per stage and the run's markdown summary."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from flows.artifacts import artifact_key
from pipeline.demo import demo_config


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


async def _latest_artifacts(keys: list[str]) -> dict[str, object]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    async with get_client() as client:
        found = await client.read_latest_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=keys)))
    return {a.key: a for a in found}


async def _versions(key: str) -> int:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    async with get_client() as client:
        return len(await client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key]))))


@pytest.mark.slow
def test_flow_run_publishes_stage_tables_and_a_summary_with_stable_keys(tmp_path, prefect_server):
    from flows.pseudo_label import pseudo_label

    cfg = demo_config(tmp_path).model_copy(update={"executor": "local"})
    # Prefect configures logging itself, so listen on our logger directly.
    records = _Records()
    progress_log = logging.getLogger("relfactory.progress")
    progress_log.addHandler(records)
    level = progress_log.level
    progress_log.setLevel(logging.INFO)
    try:
        manifest = pseudo_label(cfg.model_dump(mode="json"))
    finally:
        progress_log.removeHandler(records)
        progress_log.setLevel(level)
    stages = list(manifest["stages"])
    keys = [artifact_key(cfg.name, s) for s in stages] + [artifact_key(cfg.name, "summary")]
    assert keys[-1] == "relfactory-demo-summary"
    artifacts = asyncio.run(_latest_artifacts(keys))
    assert set(artifacts) == set(keys)

    tag = artifacts[artifact_key(cfg.name, "tag")]
    assert tag.type == "table"
    rows = tag.data if isinstance(tag.data, list) else json.loads(tag.data)
    assert rows[0]["part"] == "all" and rows[0]["rows"] == manifest["stages"]["tag"]["rows"]
    assert rows[0]["computed_parts"] == manifest["n_parts"] and len(rows) == 1 + manifest["n_parts"]
    assert rows[0]["compute_s"] > 0 and rows[0]["rows_per_s"] > 0  # throughput
    assert sum(r["rows"] for r in rows[1:]) == rows[0]["rows"]

    summary = artifacts[artifact_key(cfg.name, "summary")]
    assert summary.type == "markdown"
    assert "report.html" in summary.data and (cfg.run_dir / "report.html").is_file()
    assert f"| shard | complete | {manifest['stages']['shard']['rows']} |" in summary.data

    # Structured progress logs: one line per unit with the run, stage and part.
    units = records.records
    assert len(units) == 5 * manifest["n_parts"]
    assert all(r.run == "demo" and r.stage and r.part is not None for r in units)
    assert any(r.getMessage().startswith("run=demo stage=caption part=0 rows=") for r in units)

    # Same run name, new flow run: a new version under the same key (history in the UI).
    (cfg.run_dir / "tag").rename(tmp_path / "old-tag")  # force work so the flow runs again
    pseudo_label(cfg.model_dump(mode="json"))
    assert asyncio.run(_versions(artifact_key(cfg.name, "summary"))) == 2
