"""The stage graph: what each stage reads, where its function lives, what it needs.

Functions are referenced by import path and imported only inside the worker
that runs them, so the driver never loads torch, spaCy or a captioner.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass

from pipeline.config import RunConfig
from pipeline.contracts import Row, StageOutput

StageFn = Callable[[dict[str, list[Row]], RunConfig], StageOutput]

# Benchmarks only (bench/scale.py): ``caption=bench.dry_stages:caption;parse=...`` swaps stage
# functions for ones that read and write parts without models, in the driver and every worker.
OVERRIDE_ENV = "RELFACTORY_STAGE_FUNCTIONS"


def _overrides() -> dict[str, str]:
    spec = os.environ.get(OVERRIDE_ENV, "")
    return dict(item.split("=", 1) for item in spec.split(";") if "=" in item)

# Bump a stage's version when its code changes what it outputs, so cached
# results computed by older code are not reused.
STAGE_VERSIONS = {"ingest": 1, "caption": 1, "parse": 1, "match": 2, "tag": 2, "shard": 2}


@dataclass(frozen=True)
class StageSpec:
    name: str
    inputs: tuple[str, ...]
    function: str  # "module:function"
    # Stages whose error rows this stage also reads, as inputs["<stage>.errors"].
    error_inputs: tuple[str, ...] = ()

    @property
    def override(self) -> str | None:
        """The function a benchmark put in this stage's place (``OVERRIDE_ENV``); part of the stage key."""
        return _overrides().get(self.name)

    def load(self) -> StageFn:
        module, _, attr = (self.override or self.function).partition(":")
        return getattr(importlib.import_module(module), attr)

    def wants_gpu(self, cfg: RunConfig) -> bool:
        if self.name == "caption":
            return cfg.caption.backend in {"blip", "lavis"}
        if self.name == "tag":
            return cfg.tag.tagger in {"rtagger", "clip"}
        return False


STAGES: dict[str, StageSpec] = {
    spec.name: spec
    for spec in (
        StageSpec("caption", ("ingest",), "stages.caption:run_caption"),
        StageSpec("parse", ("caption",), "stages.parse:run_parse"),
        StageSpec("match", ("ingest", "parse"), "stages.match:run_match"),
        StageSpec("tag", ("ingest", "match"), "stages.tag:run_tag"),
        StageSpec("shard", ("ingest", "caption", "tag"), "stages.shard:run_shard",
                  error_inputs=("parse", "match", "tag")),
    )
}

# Stages after ingest, in the order data flows.
PART_STAGES: tuple[str, ...] = tuple(STAGES)
