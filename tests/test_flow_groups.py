"""The Prefect flow runs one task per group of parts, and the groups compute every unit exactly once."""

from __future__ import annotations

import pytest

from pipeline.demo import demo_config


@pytest.mark.slow
def test_one_prefect_task_run_per_group_of_parts(tmp_path, prefect_server):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect.client.schemas.sorting import FlowRunSort

    from flows.pseudo_label import pseudo_label

    # 6 parts of 1 image, 1 worker: groups of 4 parts, so 2 task runs for 30 units.
    cfg = demo_config(tmp_path).model_copy(update={"part_size": 1, "workers": 1, "executor": "local",
                                                   "name": "grouped"})
    manifest = pseudo_label(cfg.model_dump(mode="json"))
    assert manifest["n_parts"] == 6
    assert manifest["this_invocation"]["parts_computed_by_stage"] == dict.fromkeys(
        ("caption", "parse", "match", "tag", "shard"), 6)

    with get_client(sync_client=True) as client:
        flow_run = next(r for r in client.read_flow_runs(sort=FlowRunSort.START_TIME_DESC, limit=50) if r.parameters["config"]["name"] == "grouped")
        task_runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run.id])))
    assert sorted(t.name for t in task_runs) == ["parts-0-3", "parts-4-5"]
    assert all(t.state.is_completed() for t in task_runs)
