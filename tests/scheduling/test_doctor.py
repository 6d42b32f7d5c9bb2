"""``relfactory doctor``: healthy on a working set-up, and names what is broken on a broken one."""

from __future__ import annotations

import datetime
import time

import pytest

from pipeline.cli import main
from pipeline.doctor import (FAIL, OK, WARN, DeploymentState, assess_scheduler, check_captioner,
                             check_prefect_api, check_ray, check_versions)
from tests.net import free_loopback_port

NOW = datetime.datetime(2026, 12, 1, 9, 0, tzinfo=datetime.timezone.utc)


def _deployment(name: str, age_s: float, runs: int, scheduled: bool = True, served: bool = True) -> DeploymentState:
    return DeploymentState(name=name, scheduled=scheduled, updated=NOW - datetime.timedelta(seconds=age_s),
                           auto_scheduled_runs=runs, served=served)


def test_scheduler_that_creates_no_runs_is_named():
    checks = assess_scheduler([_deployment("pseudo_label/nightly", age_s=900, runs=0),
                               _deployment("pseudo_label/weekly", age_s=900, runs=3)], NOW, grace_s=180)
    assert checks[0].status == FAIL
    assert "pseudo_label/nightly" in checks[0].detail and "weekly" not in checks[0].detail
    assert "SQLAlchemy must be 2.0.x" in checks[0].line()


def test_scheduler_judgement_waits_for_new_deployments_and_ignores_paused_ones():
    assert assess_scheduler([_deployment("a", age_s=10, runs=0)], NOW, grace_s=180)[0].status == WARN
    only_paused = assess_scheduler([_deployment("a", age_s=900, runs=0, scheduled=False)], NOW, grace_s=180)
    assert [c.status for c in only_paused] == [OK]
    healthy = assess_scheduler([_deployment("a", age_s=900, runs=3, served=False)], NOW, grace_s=180)
    assert [(c.name, c.status) for c in healthy] == [("scheduler", OK), ("serving", WARN)]
    assert "no process is serving a" in healthy[1].detail


def test_mismatched_versions_are_named(tmp_path):
    lock = tmp_path / "requirements.lock"
    lock.write_text("# pins\nprefect==3.8.8\nSQLAlchemy[asyncio]==2.0.58\ntorch==2.13.0\n")
    installed = {"prefect": "3.8.8", "sqlalchemy": "2.0.58", "torch": "2.13.0+cpu"}
    assert check_versions(lock, installed.get).status == OK  # a local build label satisfies the pin
    installed["torch"] = "2.12.0"
    drift = check_versions(lock, installed.get)
    assert drift.status == FAIL and "torch 2.12.0 (lock 2.13.0)" in drift.detail
    installed.update(torch="2.13.0", sqlalchemy="2.1.9")
    bad = check_versions(lock, installed.get)
    assert bad.status == FAIL and "SQLAlchemy 2.1.9 with prefect 3.8.8" in bad.detail


def test_unreachable_prefect_api_and_ray_are_named():
    port = free_loopback_port()  # nothing listens there
    api = check_prefect_api(f"http://127.0.0.1:{port}/api")
    assert api.status == FAIL and "is not reachable" in api.detail and "prefect server start" in api.line()
    ray = check_ray(f"127.0.0.1:{port}")
    assert ray.status == FAIL and "nothing answers" in ray.detail


def test_captioner_weights_found_locally_or_named_missing(tmp_path):
    model_dir = tmp_path / "blip"
    model_dir.mkdir()
    (model_dir / "config.json").write_text("{}")
    assert check_captioner("blip", str(model_dir)).status == FAIL  # config without weights
    (model_dir / "model.safetensors").write_bytes(b"")
    assert check_captioner("blip", str(model_dir)).status == OK
    missing = check_captioner("blip", "Salesforce/blip-image-captioning-large", cache_dir=tmp_path / "hub")
    assert missing.status == FAIL and "huggingface-cli download Salesforce/blip" in missing.line()
    assert check_captioner("oracle", "unused").status == OK


def test_doctor_command_exits_non_zero_and_names_the_failure(capsys):
    code = main(["doctor", "--captioner", "oracle", "--api-url", f"http://127.0.0.1:{free_loopback_port()}/api"])
    out = capsys.readouterr().out
    assert code == 1
    assert "FAIL  prefect api" in out and "doctor: 1 check(s) failed: prefect api" in out


@pytest.mark.slow
def test_doctor_reports_the_scheduler_healthy_on_a_real_server(real_prefect_server, capsys):
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.client.schemas.actions import DeploymentScheduleCreate
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
    from prefect.client.schemas.schedules import IntervalSchedule

    url = real_prefect_server.url
    with SyncPrefectClient(url) as client:
        flow_id = client.create_flow_from_name("doctor-probe")
        deployment_id = client.create_deployment(
            flow_id, "hourly", schedules=[DeploymentScheduleCreate(schedule=IntervalSchedule(interval=3600))])
        deadline = time.monotonic() + 120  # the test server's scheduler loop is 5 s
        while not client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id]))):
            assert time.monotonic() < deadline, "the scheduler created no run in 120 s:\n" + "\n".join(
                real_prefect_server.scheduler_errors()[-3:])
            time.sleep(1)
    code = main(["doctor", "--captioner", "oracle", "--api-url", url])
    out = capsys.readouterr().out
    assert "OK    prefect api" in out
    assert "OK    scheduler   creating runs for" in out
    assert "no process is serving doctor-probe/hourly" in out  # a WARN: nobody runs it, and doctor says so
    assert code == 0, out
