"""Exact resume: everything a run needs to continue as if it had never stopped.

``train_state.pt`` holds the model and optimiser state, the scheduler, the
AMP scaler, the global step (which is the sampler position: the sampler is a
pure function of seed and step), every random generator (Python, NumPy,
torch CPU and CUDA) and a fingerprint of the data, so a resume against
different sources is refused rather than silently diverging. The file is
written to a temporary name and renamed, so a crash mid-write leaves the
previous state intact. Only plain containers and tensors are stored: it loads
with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from storage.atomic import atomic_write

STATE_FILE = "train_state.pt"
STATE_FORMAT = "relfactory-train-state"


class ResumeError(ValueError):
    """A saved training state that cannot continue this run."""


def capture_rng() -> dict[str, Any]:
    py_version, py_state, py_gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state: dict[str, Any] = {
        "python": [py_version, list(py_state), py_gauss],
        "numpy": [np_name, torch.from_numpy(np.asarray(np_keys, dtype=np.int64)), int(np_pos), int(np_has_gauss),
                  float(np_gauss)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    version, py_state, gauss = state["python"]
    random.setstate((version, tuple(py_state), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def atomic_torch_save(payload: Any, path: Path) -> Path:
    path = Path(path)
    atomic_write(path, lambda tmp: torch.save(payload, tmp))
    return path


def save_train_state(output: Path, *, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                     scheduler: Any, scaler: Any, step: int, fingerprint: dict[str, Any],
                     extra: dict[str, Any] | None = None) -> Path:
    payload = {
        "format": STATE_FORMAT,
        "step": int(step),
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None and scaler.is_enabled() else None,
        "rng": capture_rng(),
        "fingerprint": fingerprint,
        "extra": dict(extra or {}),
    }
    return atomic_torch_save(payload, Path(output) / STATE_FILE)


def state_path(output: Path) -> Path:
    return Path(output) / STATE_FILE


def load_train_state(output: Path) -> dict[str, Any] | None:
    path = state_path(output)
    if not path.is_file():
        return None
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means the file is unusable
        raise ResumeError(f"cannot read training state {path}: {exc}") from None
    if not isinstance(payload, dict) or payload.get("format") != STATE_FORMAT:
        raise ResumeError(f"{path} is not a relfactory training state")
    return payload


def check_fingerprint(saved: dict[str, Any], current: dict[str, Any]) -> None:
    diffs = sorted(k for k in set(saved) | set(current) if saved.get(k) != current.get(k))
    if diffs:
        details = "; ".join(f"{k}: saved {saved.get(k)!r}, now {current.get(k)!r}" for k in diffs)
        raise ResumeError(f"the saved training state does not match this run ({details}); "
                          "use a new output directory or set resume: false")


def apply_train_state(payload: dict[str, Any], *, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                      scheduler: Any, scaler: Any) -> int:
    """Load everything back; returns the step to continue from."""
    model.load_state_dict(payload["model"])
    optimizer.load_state_dict(payload["optimizer"])
    scheduler.load_state_dict(payload["scheduler"])
    if payload.get("scaler") is not None and scaler is not None:
        scaler.load_state_dict(payload["scaler"])
    restore_rng(payload["rng"])
    return int(payload["step"])
