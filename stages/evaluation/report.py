"""Evaluation results: one JSON file next to the checkpoint, and a text table.

Every evaluator returns an ``EvalResult``: headline ``metrics`` in percent (as
papers report them), ``per_class`` APs, and ``counts`` (images, ground-truth
instances, detections) so a reader can tell a score on 100 images from one on
the full test set. ``write_result`` stores it as
``<checkpoint>.eval-<benchmark>.json`` beside the checkpoint file (or
``eval-<benchmark>.json`` inside a checkpoint directory), atomically.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from storage.atomic import atomic_write_bytes


@dataclass
class EvalResult:
    benchmark: str  # "hico-det", "v-coco", "oi-sgg"
    protocol: str  # which reference behaviour the numbers reproduce
    metrics: dict[str, float]  # percent
    per_class: dict[str, dict[str, float]] = field(default_factory=dict)  # metric -> class -> percent
    counts: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "benchmark": self.benchmark,
            "protocol": self.protocol,
            "metrics": {k: _finite_or_none(v) for k, v in self.metrics.items()},
            "per_class": {
                name: {k: _finite_or_none(v) for k, v in values.items()} for name, values in self.per_class.items()
            },
            "counts": dict(self.counts),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "EvalResult":
        def floats(values: dict[str, Any]) -> dict[str, float]:
            return {k: math.nan if v is None else float(v) for k, v in values.items()}

        return cls(
            benchmark=data["benchmark"],
            protocol=data["protocol"],
            metrics=floats(data["metrics"]),
            per_class={name: floats(values) for name, values in data.get("per_class", {}).items()},
            counts={k: int(v) for k, v in data.get("counts", {}).items()},
        )


def _finite_or_none(value: float) -> float | None:
    # JSON has no NaN; an undefined AP (a class without ground truth) is null.
    value = float(value)
    return value if math.isfinite(value) else None


def result_path(checkpoint: Path | str, benchmark: str) -> Path:
    checkpoint = Path(checkpoint)
    if checkpoint.is_dir():
        return checkpoint / f"eval-{benchmark}.json"
    return checkpoint.with_name(f"{checkpoint.name}.eval-{benchmark}.json")


def write_result(result: EvalResult, checkpoint: Path | str, extra: dict[str, Any] | None = None) -> Path:
    """Write ``result`` beside ``checkpoint``; ``extra`` (run settings ...) is stored under ``"run"``."""
    path = result_path(checkpoint, result.benchmark)
    payload = result.to_dict()
    payload["checkpoint"] = Path(checkpoint).name
    if extra:
        payload["run"] = extra
    atomic_write_bytes(path, (json.dumps(payload, indent=2) + "\n").encode("utf-8"))
    return path


def read_result(path: Path | str) -> EvalResult:
    with open(path, encoding="utf-8") as f:
        return EvalResult.from_dict(json.load(f))


def format_table(results: Sequence[EvalResult] | EvalResult) -> str:
    """The headline metrics as an aligned text table, one block per result."""
    if isinstance(results, EvalResult):
        results = [results]
    lines = []
    for result in results:
        rows = [(name, "n/a" if not math.isfinite(v) else f"{v:.2f}") for name, v in result.metrics.items()]
        width = max([len("metric")] + [len(name) for name, _ in rows])
        value_width = max([len("value")] + [len(v) for _, v in rows])
        counts = ", ".join(f"{k}={v}" for k, v in result.counts.items())
        lines.append(f"{result.benchmark} — {result.protocol}")
        if counts:
            lines.append(f"({counts})")
        lines.append(f"{'metric':<{width}}  {'value':>{value_width}}")
        lines.append(f"{'-' * width}  {'-' * value_width}")
        lines.extend(f"{name:<{width}}  {value:>{value_width}}" for name, value in rows)
        lines.append("")
    return "\n".join(lines).rstrip("\n")
