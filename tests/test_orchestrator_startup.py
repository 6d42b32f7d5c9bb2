"""Start-up of Prefect and Ray on a busy machine: generous timeouts, reuse of a running server, one-line failures."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows import prefect_api
from pipeline import ray_start
from pipeline.label import run_label
from tests.reliability.helpers import demo_cfg


def test_startup_timeout_defaults_to_minutes_and_honours_the_user(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(prefect_api.STARTUP_TIMEOUT_ENV, raising=False)
    assert prefect_api.startup_timeout_s() == prefect_api.DEFAULT_STARTUP_TIMEOUT_S >= 120
    monkeypatch.setenv(prefect_api.STARTUP_TIMEOUT_ENV, "45")
    assert prefect_api.startup_timeout_s() == 45


def test_prefect_reads_our_timeout_even_when_imported_first(monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect.settings import PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS

    monkeypatch.setenv(prefect_api.STARTUP_TIMEOUT_ENV, "321")
    monkeypatch.setattr(prefect_api, "ensure_prefect_api", lambda: "http://stub/api")
    with prefect_api.prefect_api() as url:
        assert url == "http://stub/api"
        assert PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.value() == 321


def _no_api_url():
    from prefect.settings import PREFECT_API_URL, temporary_settings

    return temporary_settings(updates={PREFECT_API_URL: None})


def test_a_server_that_does_not_start_in_time_is_one_line_saying_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect.server.api.server import SubprocessASGIServer

    def too_slow(self, timeout=None):
        raise RuntimeError("Timed out while attempting to connect to ephemeral Prefect API server. "
                           "stdout: many\nlines\nof\nlog")

    monkeypatch.setattr(SubprocessASGIServer, "start", too_slow)
    monkeypatch.setattr(SubprocessASGIServer, "stop", lambda self: None)
    monkeypatch.setenv(prefect_api.STARTUP_TIMEOUT_ENV, "7")
    with _no_api_url(), pytest.raises(prefect_api.OrchestratorUnavailable) as info:
        prefect_api.ensure_prefect_api()
    message = str(info.value)
    assert "\n" not in message and "within 7 s" in message
    for advice in ("PREFECT_API_URL", prefect_api.STARTUP_TIMEOUT_ENV, "--orchestrator none"):
        assert advice in message


def test_a_set_api_url_is_used_and_no_server_is_started(monkeypatch: pytest.MonkeyPatch, prefect_server: str) -> None:
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import PREFECT_API_URL, temporary_settings

    def must_not_start(self, timeout=None):
        raise AssertionError("a temporary server was started although PREFECT_API_URL is set")

    monkeypatch.setattr(SubprocessASGIServer, "start", must_not_start)
    with temporary_settings(updates={PREFECT_API_URL: prefect_server}):
        assert prefect_api.ensure_prefect_api() == prefect_server


def test_an_unreachable_api_url_is_named_in_one_line() -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    dead = "http://127.0.0.1:9/api"  # the discard port: nothing listens there
    with temporary_settings(updates={PREFECT_API_URL: dead}), pytest.raises(prefect_api.OrchestratorUnavailable) as info:
        prefect_api.ensure_prefect_api()
    assert dead in str(info.value) and "\n" not in str(info.value)


def test_an_up_to_date_rerun_starts_neither_prefect_nor_ray(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import flows.pseudo_label as flow_module

    cfg = demo_cfg(tmp_path)
    run_label(cfg)

    def must_not_start(*_args, **_kwargs):
        raise AssertionError("an orchestrator was started for a run with nothing to do")

    monkeypatch.setattr(flow_module, "prefect_api", must_not_start)
    monkeypatch.setattr(flow_module, "ensure_ray", must_not_start)
    manifest = flow_module.pseudo_label(cfg.model_dump(mode="json"))
    assert manifest["this_invocation"]["parts_computed"] == 0
    assert manifest["stages"]["shard"]["state"] == "complete"


class _FakeRay:
    """Stands in for the ``ray`` module: ``init`` fails the first ``failures`` times."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.inits = 0
        self.shutdowns = 0

    def is_initialized(self) -> bool:
        return False

    def init(self, **_kwargs) -> None:
        self.inits += 1
        if self.inits <= self.failures:
            raise Exception("The current node timed out during startup. This could happen because some of the "
                            "raylet failed to startup or the GCS has become overloaded.")

    def shutdown(self) -> None:
        self.shutdowns += 1


def test_a_slow_local_ray_start_is_retried_once(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _FakeRay(failures=1)
    monkeypatch.setitem(__import__("sys").modules, "ray", fake)
    ray_start.start_ray(None, workers=1)
    assert fake.inits == 2 and fake.shutdowns == 1


def test_a_local_ray_that_never_starts_is_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _FakeRay(failures=99)
    monkeypatch.setitem(__import__("sys").modules, "ray", fake)
    with pytest.raises(ray_start.RayUnavailable) as info:
        ray_start.start_ray(None, workers=1)
    message = str(info.value)
    assert fake.inits == ray_start.LOCAL_START_ATTEMPTS
    assert "\n" not in message and "timed out during startup" in message and "--executor local" in message


def test_joining_an_unreachable_cluster_is_not_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _FakeRay(failures=99)
    monkeypatch.setitem(__import__("sys").modules, "ray", fake)
    with pytest.raises(ray_start.RayUnavailable, match="--ray-address ray://head:10001"):
        ray_start.start_ray("ray://head:10001", workers=1)
    assert fake.inits == 1


def test_the_cli_prints_one_line_when_the_orchestrator_cannot_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    import flows.pseudo_label as flow_module
    from pipeline.cli import main

    def unavailable():
        raise prefect_api.OrchestratorUnavailable("the temporary Prefect server did not start within 1 s; "
                                                  + prefect_api.WHAT_TO_DO)

    monkeypatch.setattr(flow_module, "prefect_api", unavailable)
    code = main(["label", "--dataset-kind", "demo", "--captioner", "oracle", "--n-cap", "1", "--executor", "local",
                 "--output", str(tmp_path), "--run", "busy"])
    err = capsys.readouterr().err.strip()
    assert code == 1
    assert err.count("\n") == 0 and "--orchestrator none" in err


def test_a_ray_that_cannot_start_is_one_line_before_any_prefect_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    import flows.pseudo_label as flow_module
    from pipeline.cli import main

    def ray_down(*_args, **_kwargs):
        raise ray_start.RayUnavailable("the local Ray instance did not start after 2 attempts (node timed out)")

    def must_not_start(*_args, **_kwargs):
        raise AssertionError("Prefect was started although Ray could not be")

    monkeypatch.setattr(flow_module, "ensure_ray", ray_down)
    monkeypatch.setattr(flow_module, "prefect_api", must_not_start)
    code = main(["label", "--dataset-kind", "demo", "--captioner", "oracle", "--n-cap", "1", "--executor", "ray",
                 "--output", str(tmp_path), "--run", "noray"])
    err = capsys.readouterr().err.strip()
    assert code == 1 and err.count("\n") == 0 and "did not start after 2 attempts" in err, err


def test_a_local_start_never_joins_a_cluster_left_on_the_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without an address Ray would join any `ray start` cluster here, then refuse num_cpus."""
    seen: dict = {}
    fake = _FakeRay(failures=0)
    fake.init = lambda **kwargs: seen.update(kwargs)  # type: ignore[method-assign]
    monkeypatch.setitem(__import__("sys").modules, "ray", fake)
    ray_start.start_ray(None, workers=3)
    assert seen["address"] == "local" and seen["num_cpus"] == 3
