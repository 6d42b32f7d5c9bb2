"""Per-image statistics of a run: distributions, images left without output and why, confidence vs η.

Shared by ``relfactory inspect`` (text) and ``relfactory report`` (plots). Every
figure streams over committed parts with only the columns it needs.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from pipeline.contracts import STAGE_ORDER
from storage.run_reader import RunReader

# What "one unit of output per image" means at each stage, for its distribution.
PER_IMAGE_UNIT = {"ingest": "boxes", "caption": "captions", "parse": "triplets", "match": "candidate pairs",
                  "tag": "relations", "shard": "relations"}


@dataclass
class Distribution:
    """Summary of a count per item (image, proposal)."""

    n: int
    total: int
    median: float
    p95: float
    max: int
    top1_share: float  # share of the total held by the top 1 % of items (at least one item)
    zeros: int

    @classmethod
    def of(cls, counts: list[int]) -> "Distribution":
        if not counts:
            return cls(0, 0, 0.0, 0.0, 0, 0.0, 0)
        ordered = sorted(counts)
        n, total = len(ordered), sum(ordered)
        top = ordered[-max(1, math.ceil(0.01 * n)):]
        return cls(n, total, _quantile(ordered, 0.5), _quantile(ordered, 0.95), ordered[-1],
                   sum(top) / total if total else 0.0, sum(1 for c in ordered if c == 0))

    def line(self, unit: str, per: str = "image") -> str:
        return (f"{unit} per {per}: median {self.median:g}  p95 {self.p95:g}  max {self.max}  "
                f"(over {self.n} {per}s, {self.zeros} with none; top 1 % of {per}s hold {self.top1_share:.0%})")


def _quantile(ordered: list[int], q: float) -> float:
    """Linear-interpolated quantile (numpy's default), without numpy for a list of ints."""
    pos = (len(ordered) - 1) * q
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return round(ordered[low] + (ordered[high] - ordered[low]) * (pos - low), 3)


def ingested_images(reader: RunReader) -> list[int]:
    if "ingested" not in reader.memo:
        reader.memo["ingested"] = [row["image_id"] for row in reader.rows("ingest", columns=["image_id"])]
    return reader.memo["ingested"]


def per_image_counts(reader: RunReader, stage: str) -> dict[int, int]:
    """The stage's output units per image (0 for images the stage has no row for)."""
    counts: dict[int, int] = {image_id: 0 for image_id in ingested_images(reader)}
    if stage == "ingest":
        for row in reader.rows("ingest", columns=["image_id", "objects"]):
            counts[row["image_id"]] = len(row["objects"] or [])
    elif stage == "caption":
        for row in reader.rows("caption", columns=["image_id"]):
            counts[row["image_id"]] = counts.get(row["image_id"], 0) + 1
    elif stage == "parse":
        for row in reader.rows("parse", columns=["image_id", "triplets"]):
            counts[row["image_id"]] = counts.get(row["image_id"], 0) + len(row["triplets"] or [])
    elif stage == "match":
        for row in reader.rows("match", columns=["image_id", "pairs"]):
            counts[row["image_id"]] = counts.get(row["image_id"], 0) + len(row["pairs"] or [])
    else:
        for row in reader.rows(stage, columns=["image_id", "relationships"]):
            counts[row["image_id"]] = counts.get(row["image_id"], 0) + len(row["relationships"] or [])
    return counts


def pairs_per_proposal(reader: RunReader) -> Distribution:
    """Candidate pairs each caption proposal (image, relation text, class pair) was spread over.

    The greedy rule gives a proposal's text to every one of these pairs, so a
    heavy tail here is where one caption turns into a hundred relations.
    """
    counts: Counter = Counter()
    for row in reader.rows("match", columns=["image_id", "pairs"]):
        for pair in row["pairs"] or []:
            for proposal in pair["proposals"] or []:
                counts[(row["image_id"], pair["subject_category"], pair["object_category"], proposal["relation"])] += 1
    return Distribution.of(list(counts.values()))


def confidences(reader: RunReader, stage: str = "tag") -> list[float]:
    return [rel["confidence"] for row in reader.rows(stage, columns=["relationships"])
            for rel in row["relationships"] or []]


def run_eta(reader: RunReader) -> float | None:
    eta = ((reader.manifest.get("config") or {}).get("tag") or {}).get("eta")
    if eta is None:
        for row in reader.rows("tag", columns=["eta"]):
            return row["eta"]
    return eta


def kept_vs_eta(values: list[float], eta: float, steps: int = 10) -> list[tuple[float, int]]:
    """Relations a stricter threshold would keep: (η', count with confidence > η') from the run's η up.

    Below the run's own η nothing can be said: those relations were never stored.
    """
    grid = sorted({round(eta + (1.0 - eta) * i / steps, 4) for i in range(steps + 1)})
    return [(threshold, sum(1 for v in values if v > threshold)) for threshold in grid]


def confidence_histogram(values: list[float], bins: int = 10) -> list[tuple[float, float, int]]:
    counts = [0] * bins
    for v in values:
        counts[min(bins - 1, max(0, int(v * bins)))] += 1
    return [(i / bins, (i + 1) / bins, c) for i, c in enumerate(counts)]


@dataclass
class ImageTrace:
    """How far one image got, for explaining why it has no output at a stage."""

    captions: int = 0
    triplets: int = 0
    pairs: int = 0
    tag_row: bool = False
    scored_pairs: int = 0
    relations: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)  # (stage, reason), in stage order


def trace_images(reader: RunReader) -> dict[int, ImageTrace]:
    if "traces" not in reader.memo:
        reader.memo["traces"] = _trace_images(reader)
    return reader.memo["traces"]


def _trace_images(reader: RunReader) -> dict[int, ImageTrace]:
    traces: dict[int, ImageTrace] = defaultdict(ImageTrace)
    for image_id in ingested_images(reader):
        traces[image_id]  # noqa: B018 - every ingested image gets a trace, even one with no output anywhere
    for stage in reader.stages():
        for error in reader.errors(stage):
            traces[error["image_id"]].errors.append((stage, error["reason"]))
    for row in reader.rows("caption", columns=["image_id"]):
        traces[row["image_id"]].captions += 1
    for row in reader.rows("parse", columns=["image_id", "triplets"]):
        traces[row["image_id"]].triplets += len(row["triplets"] or [])
    for row in reader.rows("match", columns=["image_id", "pairs"]):
        traces[row["image_id"]].pairs += len(row["pairs"] or [])
    for row in reader.rows("tag", columns=["image_id", "n_pairs", "relationships"]):
        trace = traces[row["image_id"]]
        trace.tag_row = True
        trace.scored_pairs += row["n_pairs"] or 0
        trace.relations += len(row["relationships"] or [])
    return dict(traces)


_STAGE_INDEX = {s: i for i, s in enumerate(STAGE_ORDER)}


def why_no_output(trace: ImageTrace, stage: str) -> str | None:
    """Why an image has no output at ``stage`` (None if it has some): the first thing that went missing."""
    upto = _STAGE_INDEX[stage]
    for err_stage, reason in trace.errors:
        if _STAGE_INDEX.get(err_stage, 99) <= upto:
            return f"{err_stage} error: {reason}"
    checks = [
        ("caption", trace.captions == 0, "no captions"),
        ("parse", trace.triplets == 0, "no triplet parsed from its captions"),
        ("match", trace.pairs == 0, "no triplet matched a pair of its boxes"),
        ("tag", trace.relations == 0, "every candidate pair scored at or below η"),
    ]
    for check_stage, missing, reason in checks:
        if _STAGE_INDEX[check_stage] <= upto and missing:
            return reason
    return None


def no_output_reasons(traces: dict[int, ImageTrace], stage: str) -> dict[str, list[int]]:
    """Images without output at ``stage``, grouped by the reason (most frequent first)."""
    grouped: dict[str, list[int]] = defaultdict(list)
    for image_id, trace in sorted(traces.items()):
        reason = why_no_output(trace, stage)
        if reason is not None:
            grouped[reason].append(image_id)
    return dict(sorted(grouped.items(), key=lambda kv: (-len(kv[1]), kv[0])))


def stage_overview(reader: RunReader) -> list[dict[str, Any]]:
    """Rows, errors and compute seconds per stage, from the manifest (what ``runs`` shows)."""
    manifest = reader.manifest
    seconds = (manifest.get("this_invocation") or {}).get("stage_seconds") or {}
    out = []
    stages = manifest.get("stages") or {}
    for stage, info in sorted(stages.items(), key=lambda kv: _STAGE_INDEX.get(kv[0], 99)):
        out.append({"stage": stage, "state": info.get("state"), "rows": info.get("rows", 0),
                    "errors": info.get("errors", 0), "error_reasons": info.get("error_reasons", {}),
                    "seconds": seconds.get(stage)})
    return out
