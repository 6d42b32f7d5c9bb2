"""Scheduled labelling: serve the ``pseudo_label`` flow on a cron or interval schedule.

``relfactory deploy --cron "0 2 * * 0" --config coco.yaml`` registers a deployment
with the Prefect server named by ``PREFECT_API_URL`` (the compose file in docker/
starts one) and serves it from this process: the server's scheduler creates the
runs, this process picks each one up and runs it in a child process; each run
labels the configured dataset, re-computing only stages whose inputs or config
changed. One run at a time: runs of one deployment share a run directory, and
its lock admits one writer.

SIGTERM (``docker stop``, a process supervisor, ``kill``) stops serving cleanly:
no new run is started, the current run gets ``stop_grace_s`` seconds to finish,
then its process group is stopped (committed parts are kept, the next run resumes
from them) and the run is marked Cancelled with the reason; its run lock is
released and the process exits 0. Prefect's own handler instead exits at once,
killing the run mid-way and leaving it "Running" in the UI forever. A first Ctrl-C
does the same; a second one stops at once.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import signal
import threading
from pathlib import Path
from typing import Any

from prefect.runner import Runner
from prefect.schedules import Cron, Interval, Schedule

from flows.pseudo_label import pseudo_label_flow
from pipeline.config import ConfigError, RunConfig
from pipeline.lock import RunLock, RunLocked

log = logging.getLogger("relfactory.deploy")

DEFAULT_STOP_GRACE_S = 5.0
# After the grace period: SIGTERM to the run's process group, then SIGKILL this much later.
KILL_GRACE_S = 3.0
# How long the runner gets to record the stopped process's exit before we set the final state.
STATE_SETTLE_S = 5.0
STOPPED_MESSAGE = "relfactory deploy received {signal}; committed parts are kept and the next run resumes from them"


def make_schedule(cron: str | None = None, interval_s: float | None = None) -> Schedule:
    """Exactly one of a cron expression (UTC) or an interval in seconds."""
    if (cron is None) == (interval_s is None):
        raise ConfigError("give exactly one of --cron or --interval")
    if cron is not None:
        try:
            return Cron(cron, timezone="UTC")  # validates the expression now, not at the first run
        except ValueError as exc:
            raise ConfigError(f"--cron: {exc}") from None
    if not interval_s or interval_s <= 0:
        raise ConfigError(f"--interval must be a positive number of seconds, not {interval_s:g}")
    return Interval(datetime.timedelta(seconds=interval_s), timezone="UTC")


def build_deployment(cfg: RunConfig, cron: str | None = None, name: str = "relfactory-pseudo-label",
                     interval_s: float | None = None) -> Any:
    """The deployment object (separate from serving, so it can be checked without a server)."""
    return pseudo_label_flow.to_deployment(
        name=name,
        schedule=make_schedule(cron, interval_s),
        parameters={"config": cfg.model_dump(mode="json")},
        tags=["relfactory", cfg.dataset.kind],
        description=f"relfactory pseudo-labelling of {cfg.dataset.kind} into run {cfg.name!r}",
    )


class _GracefulRunner(Runner):
    """A Runner that turns SIGTERM (and a first Ctrl-C) into an orderly shutdown on its own event loop.

    Prefect's handler calls the blocking ``stop()`` from inside the signal handler
    (on the thread that runs the runner's loop) and then ``sys.exit``: the flow
    run's process is killed without a final state, and its lock is left behind.
    """

    def __init__(self, stop_grace_s: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.stop_grace_s = stop_grace_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._shutdown: asyncio.Task | None = None
        self._stop_signal = ""  # the signal that started the shutdown

    async def start(self, run_once: bool = False, webserver: bool | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, self.handle_sigterm)  # super().start() installs it for SIGTERM
        await super().start(run_once=run_once, webserver=webserver)

    def handle_sigterm(self, signum: int = signal.SIGTERM, frame: Any = None) -> None:
        # Runs in the signal handler: only hand the work to the loop.
        if self._stop_signal:
            if signum == signal.SIGINT:
                raise KeyboardInterrupt  # a second Ctrl-C: stop at once, as Ctrl-C usually does
            return
        self._stop_signal = signal.Signals(signum).name
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._begin_shutdown)

    def _begin_shutdown(self) -> None:
        if self._shutdown is None:
            self._shutdown = asyncio.ensure_future(self._graceful_stop())

    async def _graceful_stop(self) -> None:
        print(f"{self._stop_signal}: no new runs; a run in progress gets {self.stop_grace_s:g} s to finish",
              flush=True)
        poller = getattr(self, "_scheduled_run_poller", None)
        if poller is not None:
            poller.stopping = True
        processes = self._process_manager
        deadline = asyncio.get_running_loop().time() + self.stop_grace_s
        try:
            for flow_run_id in processes.flow_run_ids():
                remaining = max(0.0, deadline - asyncio.get_running_loop().time())
                if await processes.wait_for_exit(flow_run_id, grace_seconds=remaining):
                    continue
                try:
                    await self._abandon(flow_run_id)
                except Exception as exc:  # e.g. the API went down first: still stop, and say so
                    log.warning("while stopping flow run %s: %s", flow_run_id, exc)
        finally:
            await self.astop()  # whatever happened above, the process must not keep serving

    async def _abandon(self, flow_run_id: Any) -> None:
        from prefect.states import Cancelled

        print(f"{self._stop_signal}: stopping flow run {flow_run_id}", flush=True)
        try:
            await self._process_manager.kill(flow_run_id, grace_seconds=KILL_GRACE_S)
        except ProcessLookupError:
            pass  # it finished on its own meanwhile
        # Let the runner notice the exit first: it unregisters the process and proposes Crashed;
        # our Cancelled (with the reason) must come after that, and before the runner's own
        # shutdown would cancel it again with a generic message.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STATE_SETTLE_S
        while loop.time() < deadline and flow_run_id in self._process_manager.flow_run_ids():
            await asyncio.sleep(0.2)
        while loop.time() < deadline:
            state = (await self._client.read_flow_run(flow_run_id)).state
            if state is not None and state.is_final():
                break
            await asyncio.sleep(0.2)
        cancelled = Cancelled(message=STOPPED_MESSAGE.format(signal=self._stop_signal))
        await self._client.set_flow_run_state(flow_run_id, cancelled, force=True)


def release_abandoned_lock(run_dir: Path) -> bool:
    """Remove the run's lock if the process holding it is gone (the stopped run); never a live owner's.

    Taking the lock runs RunLock's own stale-lock recovery; True when a lock was released.
    """
    if not (Path(run_dir) / ".lock").exists():
        return False
    lock = RunLock(run_dir)
    try:
        lock.acquire()
    except RunLocked:
        return False
    lock.release()
    return True


def serve_labelling(cfg: RunConfig, cron: str | None, name: str, interval_s: float | None = None,
                    stop_grace_s: float = DEFAULT_STOP_GRACE_S) -> None:
    """Register the deployment and run its scheduled runs here until SIGTERM or Ctrl-C."""
    deployment = build_deployment(cfg, cron=cron, name=name, interval_s=interval_s)
    runner = _GracefulRunner(stop_grace_s=stop_grace_s, pause_on_shutdown=True, limit=1)
    runner.add_deployment(deployment)
    when = f"cron {cron!r} (UTC)" if cron is not None else f"every {interval_s:g} s"
    print(f"serving deployment pseudo_label/{name} ({when}) into {cfg.run_dir}; SIGTERM or Ctrl-C stops it",
          flush=True)
    from prefect.settings import PREFECT_UI_URL

    if PREFECT_UI_URL.value():
        print(f"its runs: {PREFECT_UI_URL.value()}/deployments (Prefect UI)", flush=True)
    try:
        asyncio.run(runner.start())
    except KeyboardInterrupt:
        print("interrupted: stopped serving", flush=True)
    if release_abandoned_lock(cfg.run_dir):
        print(f"released the lock of the stopped run in {cfg.run_dir}", flush=True)
    print("stopped serving; the deployment's schedule is paused until it is served again", flush=True)
