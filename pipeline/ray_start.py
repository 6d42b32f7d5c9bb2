"""Starting (or joining) Ray for a run: one retry for a slow local start, one clear line on failure.

A local ``ray.init`` waits a fixed 30 s for its raylet to register; on a busy
machine that can run out ("The current node timed out during startup") and Ray
prints the same traceback twice. The second attempt usually succeeds because the
first one has warmed the file cache, so a local start is retried once after
cleaning up; joining a cluster (``--ray-address``) is not retried, since an
unreachable address stays unreachable.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger("relfactory")

LOCAL_START_ATTEMPTS = 2


class RayUnavailable(RuntimeError):
    """Ray could not be started or joined; the message says what to do."""

    user_facing = True


def start_ray(address: str | None, workers: int) -> None:
    """Connect this process to Ray (a no-op if it already is)."""
    import ray

    if ray.is_initialized():
        return
    # Token authentication is for clusters (docker/compose.yaml); the local Ray a run
    # starts for itself listens on this machine only, for this process's lifetime.
    if not address:
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    attempts = 1 if address else LOCAL_START_ATTEMPTS
    for attempt in range(1, attempts + 1):
        try:
            _init(address, workers)
            return
        except Exception as exc:  # Ray raises bare Exception / RuntimeError / ConnectionError here
            ray.shutdown()  # leaves no half-started processes behind for the retry or the caller
            if attempt < attempts:
                log.warning("Ray did not start (%s); retrying once", _first_line(exc))
                continue
            raise RayUnavailable(_explain(exc, address)) from None


def _init(address: str | None, workers: int) -> None:
    import ray

    if address:
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    else:
        # address="local": always a private instance. Without it ray.init joins any cluster a
        # `ray start` left on this machine, and then refuses num_cpus.
        ray.init(address="local", num_cpus=workers, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {"TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}})


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _explain(exc: BaseException, address: str | None) -> str:
    if address:
        return (f"could not join the Ray cluster at --ray-address {address} ({_first_line(exc)}); check that its "
                "head is running and, if it uses token authentication, that RAY_AUTH_TOKEN is set here")
    reason = _first_line(exc)
    advice = ("the machine may be overloaded: try again when it is quieter, use fewer --workers, or run with "
              "--executor local") if "timed out" in reason.lower() else "or run with --executor local"
    return f"the local Ray instance did not start after {LOCAL_START_ATTEMPTS} attempts ({reason}); {advice}"
