"""``relfactory doctor``: check the environment a run or a schedule is about to rely on.

One line per check, each with what to do when it fails; the exit code is 1 when
any check FAILs (WARN lines are things that work but may not be what you want):

    versions    installed packages vs requirements.lock, and known-bad combinations
                (SQLAlchemy 2.1 under prefect 3.8.8: the scheduler never creates runs)
    prefect api PREFECT_API_URL reachable and healthy
    scheduler   every active scheduled deployment has runs created by the server's
                scheduler; deployments nobody serves are named
    ray         the cluster at --ray-address answers and has workers
    gpu         GPUs visible to torch
    captioner   the configured captioner's weights are in the Hugging Face cache
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import socket
import subprocess
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Iterable

PROJECT_ROOT = Path(__file__).resolve().parents[1]
OK, WARN, FAIL = "OK", "WARN", "FAIL"
# Prefect's scheduler loop is 60 s; new deployments are also picked up within seconds.
# A deployment active for longer than this with no scheduled run means the scheduler is not working.
DEFAULT_SCHEDULER_GRACE_S = 180.0
RAY_JOIN_TIMEOUT_S = 90.0
PREFECT_TIMEOUT_S = 20.0


@dataclass
class Check:
    name: str
    status: str  # OK / WARN / FAIL
    detail: str
    fix: str = ""

    def line(self) -> str:
        text = f"{self.status:<4}  {self.name:<11} {self.detail}"
        return text + (f" -> {self.fix}" if self.fix and self.status != OK else "")


# --- versions --------------------------------------------------------------------------------------------

def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_lock(path: Path) -> dict[str, str]:
    """``{normalised name: version}`` from a pip lock of ``name[extras]==version`` lines."""
    pins = {}
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        match = re.match(r"^([A-Za-z0-9_.\-]+)(\[[^\]]*\])?==([^;\s]+)", line)
        if match:
            pins[_normalise(match.group(1))] = match.group(3)
    return pins


def _installed(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _same_version(installed: str, pinned: str) -> bool:
    # A local label (torch "2.13.0+cpu" from the CPU index) satisfies a pin without one.
    return installed == pinned or installed.split("+", 1)[0] == pinned


def check_versions(lock_path: Path, installed: Callable[[str], str | None] = _installed) -> Check:
    known_bad = _known_bad_combinations(installed)
    if known_bad:
        return Check("versions", FAIL, known_bad, "pip install -r requirements.lock")
    if not lock_path.is_file():
        return Check("versions", WARN, f"no lock file at {lock_path}; installed versions not compared",
                     "pass --lock path/to/requirements.lock")
    pins = read_lock(lock_path)
    mismatched = []
    for name, pinned in sorted(pins.items()):
        have = installed(name)
        if have is None:
            mismatched.append(f"{name} missing (lock {pinned})")
        elif not _same_version(have, pinned):
            mismatched.append(f"{name} {have} (lock {pinned})")
    if mismatched:
        shown = "; ".join(mismatched[:5]) + (f"; and {len(mismatched) - 5} more" if len(mismatched) > 5 else "")
        return Check("versions", FAIL, f"{len(mismatched)} of {len(pins)} packages differ from "
                     f"{lock_path.name}: {shown}", f"pip install -r {lock_path}")
    return Check("versions", OK, f"{len(pins)} packages match {lock_path.name} "
                 f"(prefect {installed('prefect')}, SQLAlchemy {installed('sqlalchemy')})")


def _known_bad_combinations(installed: Callable[[str], str | None]) -> str:
    """Combinations that install cleanly (pip check passes) but do not work."""
    prefect, sqlalchemy = installed("prefect"), installed("sqlalchemy")
    if prefect and sqlalchemy and prefect.startswith("3.") and not sqlalchemy.startswith("2.0."):
        return (f"SQLAlchemy {sqlalchemy} with prefect {prefect}: the server's scheduler fails every loop "
                "(\"Can't evaluate bulk DML statement\") and scheduled deployments never run")
    return ""


# --- prefect api and scheduler ---------------------------------------------------------------------------

def _prefect_client(api_url: str) -> Any:
    """A client for ``api_url`` carrying the user's PREFECT_API_AUTH_STRING (the compose server requires it)."""
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.settings import get_current_settings

    secret = get_current_settings().api.auth_string
    auth = secret.get_secret_value() if secret is not None else None
    return SyncPrefectClient(api_url, auth_string=auth, httpx_settings={"timeout": PREFECT_TIMEOUT_S})


def check_prefect_api(api_url: str | None) -> Check:
    if not api_url:
        return Check("prefect api", WARN, "PREFECT_API_URL is not set: each run starts a temporary server, "
                     "and nothing runs scheduled deployments",
                     "start a server (`prefect server start`) and export PREFECT_API_URL=http://HOST:4200/api")
    try:
        with _prefect_client(api_url) as client:
            error = client.api_healthcheck()
            version = client.api_version() if error is None else None
    except Exception as exc:  # connection refused, DNS, TLS: all mean "not reachable"
        error = exc
    if error is not None:
        return Check("prefect api", FAIL, f"{api_url} is not reachable: {_one_line(error)}",
                     "start the server (`prefect server start` or `docker compose up prefect-server`), "
                     "fix PREFECT_API_URL, or set PREFECT_API_AUTH_STRING if the server requires it")
    return Check("prefect api", OK, f"{api_url} healthy (server {version})")


@dataclass
class DeploymentState:
    """What the scheduler check needs to know about one deployment."""

    name: str
    scheduled: bool  # not paused and at least one active schedule
    updated: datetime.datetime
    auto_scheduled_runs: int
    served: bool  # a process polled for its runs recently (Prefect's READY status)


def assess_scheduler(deployments: Iterable[DeploymentState], now: datetime.datetime,
                     grace_s: float = DEFAULT_SCHEDULER_GRACE_S) -> list[Check]:
    """The scheduler works when every scheduled deployment older than ``grace_s`` has runs it created."""
    active = [d for d in deployments if d.scheduled]
    if not active:
        return [Check("scheduler", OK, "no active scheduled deployments: nothing to check")]
    starved = [d for d in active if d.auto_scheduled_runs == 0 and (now - d.updated).total_seconds() > grace_s]
    too_new = [d for d in active if d.auto_scheduled_runs == 0 and d not in starved]
    checks = []
    if starved:
        names = ", ".join(f"{d.name} (active {(now - d.updated).total_seconds():.0f} s)" for d in starved)
        checks.append(Check(
            "scheduler", FAIL, f"no scheduled runs were created for {names}",
            "the server's scheduler service is failing or disabled: look for scheduler errors in the server "
            "log; SQLAlchemy must be 2.0.x (pip install -r requirements.lock) and "
            "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED not false"))
    elif too_new:
        checks.append(Check("scheduler", WARN, "no runs yet for " + ", ".join(d.name for d in too_new)
                            + f" (changed under {grace_s:.0f} s ago)", "run doctor again in a few minutes"))
    else:
        checks.append(Check("scheduler", OK, f"creating runs for {len(active)} active scheduled deployment(s)"))
    unserved = [d.name for d in active if not d.served]
    if unserved:
        checks.append(Check("serving", WARN, "no process is serving " + ", ".join(unserved)
                            + ": its scheduled runs will wait (Late)",
                            "run `relfactory deploy ...` (or the compose worker) for it"))
    return checks


def read_deployment_states(api_url: str) -> list[DeploymentState]:
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    states = []
    with _prefect_client(api_url) as client:
        for deployment in client.read_deployments():
            runs = client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id])), limit=200)
            flow = client.read_flow(deployment.flow_id)
            states.append(DeploymentState(
                name=f"{flow.name}/{deployment.name}",
                scheduled=not deployment.paused and any(s.active for s in deployment.schedules),
                # Never-dated deployments count as new: judged on the next doctor run, not failed now.
                updated=deployment.updated or deployment.created or datetime.datetime.now(datetime.timezone.utc),
                auto_scheduled_runs=sum(1 for r in runs if r.auto_scheduled),
                served=str(getattr(deployment.status, "value", deployment.status)).upper() == "READY",
            ))
    return states


def check_scheduler(api_url: str | None, grace_s: float) -> list[Check]:
    if not api_url:
        return [Check("scheduler", WARN, "not checked: no PREFECT_API_URL", "see the prefect api line")]
    try:
        states = read_deployment_states(api_url)
    except Exception as exc:
        return [Check("scheduler", FAIL, f"could not read deployments: {_one_line(exc)}",
                      "see the prefect api line")]
    now = datetime.datetime.now(datetime.timezone.utc)
    return assess_scheduler(states, now, grace_s)


# --- ray, gpu, captioner ---------------------------------------------------------------------------------

_RAY_PROBE = """
import json, ray
ray.init(address={address!r}, log_to_driver=False, logging_level="ERROR")
print("RESOURCES " + json.dumps({{"nodes": len([n for n in ray.nodes() if n["Alive"]]), **ray.cluster_resources()}}))
"""


def _host_port(address: str) -> tuple[str, int] | None:
    match = re.match(r"^(?:ray://)?\[?([^\]/]+?)\]?:(\d+)$", address)
    return (match.group(1), int(match.group(2))) if match else None


def check_ray(address: str | None, timeout_s: float = RAY_JOIN_TIMEOUT_S) -> Check:
    if not address:
        return Check("ray", OK, "no --ray-address: each run starts a local Ray for itself")
    endpoint = _host_port(address)
    if endpoint is not None:
        try:
            socket.create_connection(endpoint, timeout=5).close()
        except OSError as exc:
            return Check("ray", FAIL, f"nothing answers at {address}: {exc.strerror or exc}",
                         "start the head (`ray start --head` / `docker compose up ray-head`) or fix --ray-address")
    try:
        probe = subprocess.run([sys.executable, "-c", _RAY_PROBE.format(address=address)], capture_output=True,
                               text=True, timeout=timeout_s, env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})
    except subprocess.TimeoutExpired:
        return Check("ray", FAIL, f"joining {address} did not finish in {timeout_s:.0f} s",
                     "check the address and that this machine's Ray version matches the cluster's")
    found = [line for line in probe.stdout.splitlines() if line.startswith("RESOURCES ")]
    if probe.returncode != 0 or not found:
        return Check("ray", FAIL, f"could not join {address}: {_last_line(probe.stderr)}",
                     "check the address, RAY_AUTH_MODE/token and that Ray versions match")
    res = json.loads(found[-1].removeprefix("RESOURCES "))
    return Check("ray", OK, f"{address}: {res.get('nodes')} node(s), {res.get('CPU', 0):g} CPUs, "
                 f"{res.get('GPU', 0):g} GPUs")


def check_gpu() -> Check:
    import torch

    if not torch.cuda.is_available():
        hint = f" (CUDA_VISIBLE_DEVICES={os.environ['CUDA_VISIBLE_DEVICES']!r})" \
            if "CUDA_VISIBLE_DEVICES" in os.environ else ""
        return Check("gpu", WARN, f"no GPU visible to torch {torch.__version__}{hint}: model stages run on CPU",
                     "on a GPU machine use the CUDA image (VARIANT=cuda) / a CUDA torch build and check the driver")
    names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return Check("gpu", OK, f"{len(names)} GPU(s): {', '.join(names)}")


_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json",
                 "pytorch_model.bin.index.json")


def check_captioner(backend: str, model_id: str, cache_dir: Path | None = None) -> Check:
    if backend != "blip":
        return Check("captioner", OK, f"captioner {backend!r} needs no model weights")
    local = Path(model_id).expanduser()
    if local.is_dir():
        has_weights = any((local / name).is_file() for name in _WEIGHT_FILES)
        if (local / "config.json").is_file() and has_weights:
            return Check("captioner", OK, f"{model_id}: local model directory")
        return Check("captioner", FAIL, f"{model_id} has no config.json and weights",
                     "point --caption-model at a directory saved with save_pretrained()")
    from huggingface_hub import try_to_load_from_cache
    from huggingface_hub.constants import HF_HUB_CACHE

    cache = cache_dir or HF_HUB_CACHE
    config = try_to_load_from_cache(model_id, "config.json", cache_dir=cache)
    weights = [name for name in _WEIGHT_FILES
               if isinstance(try_to_load_from_cache(model_id, name, cache_dir=cache), str)]
    if isinstance(config, str) and weights:
        return Check("captioner", OK, f"{model_id} in the Hugging Face cache ({cache})")
    return Check("captioner", FAIL, f"{model_id} is not in the Hugging Face cache ({cache})",
                 f"on a connected machine: huggingface-cli download {model_id} (then copy the cache / set HF_HOME), "
                 "or pass a local directory as --caption-model")


# --- running it ------------------------------------------------------------------------------------------

def _one_line(error: object) -> str:
    text = str(error).strip().splitlines()
    return (text[0] if text else type(error).__name__)[:200]


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:200] if lines else "no output"


def run_checks(args: argparse.Namespace) -> list[Check]:
    backend, model_id, ray_address = _captioner_and_ray(args)
    api_url = args.api_url or os.environ.get("PREFECT_API_URL") or None
    checks = [check_versions(Path(args.lock)), check_prefect_api(api_url)]
    if checks[-1].status != FAIL:
        checks += check_scheduler(api_url, args.scheduler_grace)
    checks += [check_ray(ray_address), check_gpu(), check_captioner(backend, model_id)]
    return checks


def _captioner_and_ray(args: argparse.Namespace) -> tuple[str, str, str | None]:
    """Captioner and Ray address from --config, overridden by the flags."""
    from pipeline.config import RunConfig, load_config_file

    cfg = load_config_file(Path(args.config)) if args.config else RunConfig()
    backend = args.captioner or cfg.caption.backend
    model_id = args.caption_model or cfg.caption.model_id
    return backend, model_id, args.ray_address or cfg.ray_address


def cmd_doctor(args: argparse.Namespace) -> int:
    checks = run_checks(args)
    for check in checks:
        print(check.line(), flush=True)
    failed = [c.name for c in checks if c.status == FAIL]
    print(f"doctor: {len(failed)} check(s) failed: {', '.join(failed)}" if failed else "doctor: no failures")
    return 1 if failed else 0


def add_doctor_parser(sub: Any) -> None:
    p = sub.add_parser("doctor", help="check versions, Prefect server and scheduler, Ray, GPU and model cache")
    p.add_argument("--config", help="run config whose captioner and Ray address to check")
    p.add_argument("--ray-address", help="Ray cluster to check (default: the config's, else none)")
    p.add_argument("--captioner", choices=["blip", "oracle", "lavis"])
    p.add_argument("--caption-model", help="Hugging Face id or local directory of the captioner")
    p.add_argument("--api-url", help="Prefect API URL (default: PREFECT_API_URL)")
    p.add_argument("--lock", default=str(PROJECT_ROOT / "requirements.lock"),
                   help="pinned versions to compare against (default: the repository's requirements.lock)")
    p.add_argument("--scheduler-grace", type=float, default=DEFAULT_SCHEDULER_GRACE_S,
                   help="seconds an active scheduled deployment may go without runs before it counts as failing")
    p.set_defaults(func=cmd_doctor)
