"""Cache keys: a stage's key hashes what determines its output.

key(stage) = hash(stage name, stage code version, the output-relevant fields of
its config section, files its config points at, and the keys of its inputs).
So a new captioner changes caption's key and, through the chain, every key
downstream of it, while ingest keeps its key; a new η changes tag and shard only.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pipeline.config import RunConfig, stable_hash
from pipeline.datasets import annotation_fingerprint
from pipeline.stage_specs import STAGE_VERSIONS, STAGES
from storage.parts import sha256_file

# The built-in synonym tables are data files: editing them must invalidate match.
VOCAB_DIR = Path(__file__).resolve().parents[1] / "stages" / "vocab"


def file_fingerprint(path: Path | None) -> dict[str, Any] | None:
    """Content hash for small files (synonym tables, caption files up to 256 MB); size+mtime beyond."""
    if path is None:
        return None
    path = Path(path)
    try:
        stat = os.stat(path)
    except OSError:
        return {"path": str(path), "missing": True}
    if stat.st_size > 256 << 20:
        return {"path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    return {"sha256": sha256_file(path)}


def stage_config(cfg: RunConfig, stage: str) -> dict[str, Any]:
    """The output-relevant configuration of one stage (what its key hashes, besides inputs)."""
    if stage == "ingest":
        return {"dataset": cfg.dataset.key_fields(), "part_size": cfg.part_size or "auto",
                "annotations": annotation_fingerprint(cfg.dataset)}
    section = cfg.section(stage)
    assert section is not None
    data: dict[str, Any] = {stage: section.key_fields()}
    if stage == "caption":
        data["seed"] = cfg.seed
        data["captions_file"] = file_fingerprint(cfg.caption.captions_file)
    elif stage == "match":
        data["synonyms_file"] = file_fingerprint(cfg.match.synonyms_file)
        data["builtin_tables"] = {name: file_fingerprint(VOCAB_DIR / f"{name}.json") for name in ("coco", "objects365")}
        data["dataset_kind"] = cfg.dataset.kind  # picks the vocabulary when "auto"
    elif stage == "tag":
        data["checkpoint"] = file_fingerprint(cfg.tag.checkpoint)
    return data


def compute_keys(cfg: RunConfig) -> dict[str, str]:
    keys: dict[str, str] = {"ingest": stable_hash({"stage": "ingest", "v": STAGE_VERSIONS["ingest"],
                                                    "config": stage_config(cfg, "ingest")})}
    for name, spec in STAGES.items():
        keys[name] = stable_hash({
            "stage": name,
            "v": STAGE_VERSIONS[name],
            "config": stage_config(cfg, name),
            "inputs": {inp: keys[inp] for inp in spec.inputs},
            # Only when a benchmark swapped the function: such output must never pass for the real stage's.
            **({"function": spec.override} if spec.override else {}),
        })
    return keys
