"""Flow-level tests: few, and all on the session's one Prefect server (the ``prefect_server`` fixture)."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from pipeline.demo import demo_config


@pytest.mark.slow
def test_pseudo_label_flow_on_ray_labels_the_demo(tmp_path, prefect_server):
    from flows.pseudo_label import pseudo_label

    cfg = demo_config(tmp_path)
    manifest = pseudo_label(cfg.model_dump(mode="json"))
    assert manifest["stages"]["shard"]["state"] == "complete"
    assert manifest["this_invocation"]["parts_computed"] == 5 * manifest["n_parts"]
    rows = [r for f in sorted((cfg.run_dir / "shard").glob("part-*.parquet")) for r in pq.read_table(f).to_pylist()]
    assert len(rows) == 6

    again = pseudo_label(cfg.model_dump(mode="json"))
    assert again["this_invocation"]["parts_computed"] == 0


def test_deployment_carries_cron_and_config(tmp_path):
    from flows.deployments import build_deployment

    cfg = demo_config(tmp_path)
    deployment = build_deployment(cfg, cron="0 2 * * 0", name="weekly-demo")
    assert deployment.name == "weekly-demo"
    assert deployment.parameters["config"]["name"] == "demo"
    crons = [getattr(s.schedule, "cron", None) for s in deployment.schedules]
    assert crons == ["0 2 * * 0"]
