"""Shared fixtures: isolated Prefect/Ray settings and the optional real data."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = (PROJECT_ROOT / ".." / "shared" / "data").resolve()

# Set before any test imports Prefect or Ray, so nothing touches the user's home.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
# The suite runs beside other work on 2 cores: a temporary Prefect server may need minutes to come up.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "600")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
if "PREFECT_HOME" not in os.environ:
    import atexit
    import shutil
    import tempfile

    os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="relfactory-prefect-")
    atexit.register(shutil.rmtree, os.environ["PREFECT_HOME"], ignore_errors=True)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real-data folder ``../shared/data``; tests using it skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present on this machine")
    return SHARED_DATA


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[str]:
    """One temporary Prefect API server for the whole test session; yields its URL.

    Flow tests request it so that none of them starts its own server, and the
    start-up is timed with the suite's generous timeout, not Prefect's 20 s default.
    """
    from flows.prefect_api import ensure_prefect_api

    url = ensure_prefect_api()
    previous = os.environ.get("PREFECT_API_URL")
    os.environ["PREFECT_API_URL"] = url  # subprocesses (the CLI) reuse it instead of starting their own
    yield url
    if previous is None:
        os.environ.pop("PREFECT_API_URL", None)
    else:
        os.environ["PREFECT_API_URL"] = previous
