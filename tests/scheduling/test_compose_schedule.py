"""The compose file's Prefect server runs our pins, and its scheduled-labelling service can stop cleanly."""

from __future__ import annotations

import re

import yaml

from flows.deployments import DEFAULT_STOP_GRACE_S, KILL_GRACE_S, STATE_SETTLE_S
from pipeline.doctor import read_lock
from tests.conftest import PROJECT_ROOT

COMPOSE = PROJECT_ROOT / "docker" / "compose.yaml"


def _services() -> dict:
    return yaml.safe_load(COMPOSE.read_text())["services"]


def test_prefect_server_is_built_from_our_image_with_the_locked_sqlalchemy():
    services = _services()
    server = services["prefect-server"]
    assert server["build"]["dockerfile"] == "docker/Dockerfile"
    assert server["image"] == services["ray-head"]["image"]  # one image, one set of pins
    assert server["entrypoint"] == ["prefect"] and server["command"][:2] == ["server", "start"]
    dockerfile = (PROJECT_ROOT / "docker" / "Dockerfile").read_text()
    assert "requirements.lock" in dockerfile
    assert read_lock(PROJECT_ROOT / "requirements.lock")["sqlalchemy"].startswith("2.0.")


def test_scheduled_labelling_service_serves_a_cron_and_has_time_to_stop_cleanly():
    service = _services()["labelling-schedule"]
    command = service["command"]
    assert command[0] == "deploy" and "--cron" in command and "--ray-address" in command
    assert service["environment"]["PREFECT_API_URL"] == "http://prefect-server:4200/api"
    grace_s = int(re.fullmatch(r"(\d+)s", service["stop_grace_period"]).group(1))
    # docker stop waits this long after SIGTERM before SIGKILL: the deploy's own shutdown must fit.
    assert grace_s > DEFAULT_STOP_GRACE_S + KILL_GRACE_S + STATE_SETTLE_S
