"""Fixtures for scheduling tests: one real Prefect server for this folder's tests."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from tests.scheduling.real_server import RealPrefectServer, start_server, stop_process_group


@pytest.fixture(scope="session")
def real_prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealPrefectServer]:
    """``prefect server start`` on a free loopback port with its own PREFECT_HOME and database; always stopped."""
    home = tmp_path_factory.mktemp("real-prefect-server")
    proc, server = start_server(home)
    try:
        yield server
    finally:
        stop_process_group(proc)
        shutil.rmtree(home, ignore_errors=True)
