"""``relfactory deploy``'s schedule options, checked before anything is registered."""

from __future__ import annotations

import datetime

import pytest

from flows.deployments import build_deployment, make_schedule
from pipeline.cli import main
from pipeline.config import ConfigError
from pipeline.demo import demo_config


def test_interval_deployment_carries_the_interval_and_config(tmp_path):
    deployment = build_deployment(demo_config(tmp_path), name="often", interval_s=30)
    (schedule,) = deployment.schedules
    assert schedule.schedule.interval == datetime.timedelta(seconds=30)
    assert deployment.parameters["config"]["output"] == str(tmp_path)


@pytest.mark.parametrize("cron, interval_s, message", [
    ("bad cron", None, "--cron: Invalid cron string"),
    (None, 0, "--interval must be a positive number of seconds"),
    ("* * * * *", 60, "exactly one of --cron or --interval"),
])
def test_bad_schedules_are_refused_with_the_option_named(cron, interval_s, message):
    with pytest.raises(ConfigError, match=message):
        make_schedule(cron, interval_s)


def test_cli_refuses_a_bad_cron_in_one_line(capsys):
    assert main(["deploy", "--dataset-kind", "demo", "--cron", "61 * * * *"]) == 2
    assert capsys.readouterr().err.startswith("relfactory: --cron: Invalid cron string")
