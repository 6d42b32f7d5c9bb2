"""Nothing listens where it should not: the compose file's ports and auth, and a live Prefect auth check."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import yaml

COMPOSE = Path(__file__).resolve().parents[1] / "docker" / "compose.yaml"
_DEFAULTED = re.compile(r"\$\{(?P<name>\w+)(?::?-(?P<default>[^}]*))?\}")
_REQUIRED = re.compile(r"^\$\{\w+:\?[^}]+\}$")


def _services() -> dict:
    return yaml.safe_load(COMPOSE.read_text())["services"]


def _with_defaults(text: str) -> str:
    """What compose makes of ``text`` when none of its variables is set."""
    return _DEFAULTED.sub(lambda m: m.group("default") or "", text)


def _published(port: str | dict) -> tuple[str, str]:
    """(host address, host port) of a ``ports`` entry, in short or long syntax."""
    if isinstance(port, dict):
        return _with_defaults(str(port.get("host_ip", ""))), str(port.get("published", ""))
    parts = _with_defaults(str(port)).split(":")
    return (parts[0], parts[1]) if len(parts) == 3 else ("", parts[0])


def test_every_published_port_binds_to_loopback_by_default() -> None:
    published = [(name, _published(port)) for name, svc in _services().items() for port in svc.get("ports", [])]
    assert published, "the compose file publishes the Prefect UI and the Ray dashboard"
    for name, (host, _port) in published:
        assert host == "127.0.0.1", f"{name} publishes on {host or 'every interface'}"


def test_prefect_server_requires_an_auth_string_and_clients_send_it() -> None:
    services = _services()
    server_env = services["prefect-server"]["environment"]
    assert _REQUIRED.match(server_env["PREFECT_SERVER_API_AUTH_STRING"]), "no default secret: compose must refuse"
    for name in ("ray-head", "ray-worker"):
        env = services[name]["environment"]
        assert env["PREFECT_API_AUTH_STRING"] == server_env["PREFECT_SERVER_API_AUTH_STRING"]


def test_the_ray_cluster_uses_token_authentication() -> None:
    for name in ("ray-head", "ray-worker"):
        env = _services()[name]["environment"]
        assert env["RAY_AUTH_MODE"] == "token" and _REQUIRED.match(env["RAY_AUTH_TOKEN"]), name
    assert "disabled" not in COMPOSE.read_text().split("RAY_AUTH_MODE", 1)[1].split("\n", 1)[0]


def test_joining_a_cluster_leaves_ray_auth_to_the_user(monkeypatch: pytest.MonkeyPatch) -> None:
    """``disabled`` is only for the local in-process Ray a run starts for itself."""
    import sys

    from pipeline import ray_start

    class FakeRay:
        def is_initialized(self) -> bool:
            return False

        def init(self, **_kwargs) -> None:
            self.mode = os.environ.get("RAY_AUTH_MODE")

        def shutdown(self) -> None:
            pass

    fake = FakeRay()
    monkeypatch.setitem(sys.modules, "ray", fake)
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    ray_start.start_ray("ray-head:6379", workers=1)
    assert fake.mode is None
    ray_start.start_ray(None, workers=1)
    assert fake.mode == "disabled"


@pytest.mark.slow
def test_a_prefect_server_with_an_auth_string_refuses_clients_without_it(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import httpx
    from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings

    from flows.prefect_api import OrchestratorUnavailable, ensure_prefect_api
    from tests.scheduling.real_server import start_server, stop_process_group

    monkeypatch.setenv("PREFECT_SERVER_API_AUTH_STRING", "relfactory:test-secret")  # read by the server only
    proc, server = start_server(tmp_path / "home")
    try:
        version = f"{server.url}/admin/version"
        assert httpx.get(version, timeout=30).status_code == 401
        assert httpx.get(version, auth=("relfactory", "wrong"), timeout=30).status_code == 401
        assert httpx.get(version, auth=("relfactory", "test-secret"), timeout=30).status_code == 200
        with temporary_settings(updates={PREFECT_API_URL: server.url, PREFECT_API_AUTH_STRING: None}):
            with pytest.raises(OrchestratorUnavailable, match="refused this client"):
                ensure_prefect_api()
        with temporary_settings(updates={PREFECT_API_URL: server.url,
                                         PREFECT_API_AUTH_STRING: "relfactory:test-secret"}):
            assert ensure_prefect_api() == server.url
    finally:
        stop_process_group(proc)
