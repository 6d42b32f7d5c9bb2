"""A free TCP port on the loopback interface, for tests that start their own servers."""

from __future__ import annotations

import socket


def free_loopback_port() -> int:
    # The port is free when this returns; a server started later may still lose a race for it,
    # so callers that can retry (tests/scheduling/real_server.py) do.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
