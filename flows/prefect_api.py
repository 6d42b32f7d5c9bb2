"""The Prefect API a flow reports to: a running server, or a temporary one that fits a busy machine.

With ``PREFECT_API_URL`` set, flows use that server and nothing is started. Without
it Prefect starts a temporary server in a subprocess and waits for it, by default
only 20 s: on a loaded 2-core machine the server's imports and database
migrations take longer than that and the run dies with a 50-line traceback. So
the temporary server is started here, before the flow, with a generous timeout
(unless the user chose one), and a failure becomes one line that says what to do.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

STARTUP_TIMEOUT_ENV = "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"
# Measured on a 2-core machine: ~10 s idle, over 50 s beside two busy processes,
# 228 s at a load average of 24. Ten minutes leaves a margin and costs nothing when
# the server is up sooner (Prefect polls its health endpoint).
DEFAULT_STARTUP_TIMEOUT_S = 600

WHAT_TO_DO = ("set PREFECT_API_URL to a running Prefect server (`prefect server start`), raise "
              f"{STARTUP_TIMEOUT_ENV}, or run with --orchestrator none")


class OrchestratorUnavailable(RuntimeError):
    """The Prefect API could not be reached or started; the message says what to do."""

    user_facing = True


def startup_timeout_s() -> int:
    """The user's ``PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS``, else our default."""
    raw = os.environ.get(STARTUP_TIMEOUT_ENV, "").strip()
    try:
        return max(1, int(float(raw))) if raw else DEFAULT_STARTUP_TIMEOUT_S
    except ValueError:
        raise OrchestratorUnavailable(f"{STARTUP_TIMEOUT_ENV}={raw!r} is not a number of seconds") from None


def ensure_prefect_api() -> str:
    """The API URL flows will use: ``PREFECT_API_URL`` if set (checked), else a temporary server started now."""
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    if url:
        _check_reachable(url)
        return url
    from prefect.server.api.server import SubprocessASGIServer

    timeout = startup_timeout_s()
    server = SubprocessASGIServer()  # one per process: the flows' client finds this instance running
    try:
        server.start(timeout=timeout)
    except Exception as exc:
        server.stop()  # a server that came up too late must not linger
        reason = str(exc).split(" stdout:")[0].strip() or type(exc).__name__
        raise OrchestratorUnavailable(
            f"the temporary Prefect server did not start within {timeout} s ({reason}); {WHAT_TO_DO}") from None
    return server.api_url


def _check_reachable(url: str) -> None:
    import httpx

    try:
        # Not /health: that one answers without credentials, and a wrong auth string should be named here.
        response = httpx.get(f"{url.rstrip('/')}/admin/version", timeout=30, headers=_auth_headers())
    except httpx.HTTPError as exc:
        raise OrchestratorUnavailable(
            f"cannot reach the Prefect API at PREFECT_API_URL={url} ({type(exc).__name__}); start that server, "
            f"unset PREFECT_API_URL to use a temporary one, or run with --orchestrator none") from None
    if response.status_code == 401:
        raise OrchestratorUnavailable(
            f"the Prefect API at {url} refused this client (401): set PREFECT_API_AUTH_STRING to the "
            "server's PREFECT_SERVER_API_AUTH_STRING")
    if response.status_code >= 400:
        raise OrchestratorUnavailable(f"the Prefect API at {url} answered {response.status_code} to a health "
                                      f"check; {WHAT_TO_DO}")


def _auth_headers() -> dict[str, str]:
    """Basic auth as Prefect's client sends it when ``PREFECT_API_AUTH_STRING`` is set."""
    import base64

    from prefect.settings import PREFECT_API_AUTH_STRING

    secret = PREFECT_API_AUTH_STRING.value()
    if not secret:
        return {}
    value = secret.get_secret_value() if hasattr(secret, "get_secret_value") else str(secret)
    return {"Authorization": "Basic " + base64.b64encode(value.encode()).decode()}


@contextmanager
def prefect_api() -> Iterator[str]:
    """Make sure flows in this block have an API, with our start-up timeout applied to Prefect's own settings."""
    from prefect.settings import PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS, temporary_settings

    # Prefect reads its settings once at import: re-apply ours in case it was imported first.
    with temporary_settings(updates={PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS: startup_timeout_s()}):
        yield ensure_prefect_api()
