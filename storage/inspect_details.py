"""The deeper views of ``relfactory inspect``: per-image statistics, error details, one image's journey.

``inspect`` (storage/inspect.py) shows a stage's schema, counts, samples and
relation texts; this module answers the next questions: how output spreads over
images, which images have none and why, how confident the relations are against
η, what exactly each error says (``--errors [REASON]``) and what happened to one
image at every stage (``--image ID``).
"""

from __future__ import annotations

import json
from collections import Counter

from storage.run_reader import ImageNotFound, RunReader
from storage.run_stats import (PER_IMAGE_UNIT, Distribution, ImageTrace, confidence_histogram, confidences,
                               kept_vs_eta, no_output_reasons, pairs_per_proposal, per_image_counts, run_eta,
                               trace_images, why_no_output)


def stage_statistics(reader: RunReader, stage: str, examples: int = 5) -> list[str]:
    """Distribution per image, images without output (with reasons), and for tag/shard confidence vs η."""
    counts = per_image_counts(reader, stage)
    lines = [Distribution.of(list(counts.values())).line(PER_IMAGE_UNIT[stage])]
    if stage == "parse":
        captions = Counter(row["image_id"] for row in reader.rows("caption", columns=["image_id"]))
        n_captions = sum(captions.values())
        if n_captions:
            lines.append(f"triplets per caption: {sum(counts.values()) / n_captions:.2f} "
                         f"({sum(counts.values())} triplets from {n_captions} captions)")
    if stage == "match":
        parsed = {r["image_id"] for r in reader.rows("parse", columns=["image_id", "triplets"]) if r["triplets"]}
        matched = {image for image, n in counts.items() if n}
        if parsed:
            lines.append(f"match rate: {len(matched & parsed)}/{len(parsed)} images with triplets got candidate pairs")
    if stage == "tag":
        lines.append(pairs_per_proposal(reader).line("candidate pairs", per="proposal"))
    if stage != "ingest":
        grouped = no_output_reasons(trace_images(reader), stage)
        total = sum(len(ids) for ids in grouped.values())
        lines.append(f"images with no {PER_IMAGE_UNIT[stage]}: {total}")
        for reason, ids in grouped.items():
            shown = ", ".join(str(i) for i in ids[:examples]) + (" ..." if len(ids) > examples else "")
            lines.append(f"  {reason}: {len(ids)}  (e.g. {shown})")
    if stage in ("tag", "shard"):
        lines.extend(confidence_lines(reader, stage))
    return lines


def confidence_lines(reader: RunReader, stage: str) -> list[str]:
    values = confidences(reader, stage)
    eta = run_eta(reader)
    if not values or eta is None:
        return []
    lines = [f"confidence (kept when > η = {eta:g}): min {min(values):.3f}  median "
             f"{sorted(values)[len(values) // 2]:.3f}  max {max(values):.3f}"]
    peak = max(c for _, _, c in confidence_histogram(values)) or 1
    for low, high, count in confidence_histogram(values):
        if count or low >= eta:
            lines.append(f"  ({low:.1f}, {high:.1f}]  {count:>6}  {'#' * round(30 * count / peak)}")
    lines.append("kept at a stricter η: " + "  ".join(f"{t:g}:{n}" for t, n in kept_vs_eta(values, eta, steps=8)))
    return lines


def list_errors(reader: RunReader, stages: list[str], reason: str | None = None, limit: int = 20) -> str:
    """Error rows with their full detail, optionally of one reason only."""
    lines: list[str] = []
    shown = total = 0
    reasons: Counter = Counter()
    for stage in stages:
        for error in reader.errors(stage):
            reasons[error["reason"]] += 1
            if reason is not None and error["reason"] != reason:
                continue
            total += 1
            if shown < limit:
                shown += 1
                lines.append(f"[{stage}] image {error['image_id']}  {error['reason']}\n    "
                             + (error["detail"] or "").rstrip().replace("\n", "\n    "))
    head = f"errors{' ' + repr(reason) if reason else ''}: {total}" + (f" (showing {shown})" if shown < total else "")
    if reason is not None and not total and reasons:
        head += f"; reasons present: {', '.join(sorted(reasons))}"
    return "\n".join([head, *lines])


def follow_image(reader: RunReader, image_id: int) -> str:
    """One image through every stage: boxes, captions, triplets, candidate pairs, relations, shard row."""
    try:
        ingest = reader.ingest_row(image_id)
    except ImageNotFound as exc:
        errors = [e for s in reader.stages() for e in reader.image_errors(s, image_id)]
        if not errors:
            return str(exc)
        return "\n".join([str(exc), *(f"  [{e['stage']}] {e['reason']}: {e['detail']}" for e in errors)])
    names = {o["object_id"]: o["category"] for o in ingest["objects"] or []}
    out = [f"image {image_id}  {ingest['file_name']}  {ingest['width']}x{ingest['height']}  "
           f"({ingest['dataset']}/{ingest['data_split']})",
           f"== ingest: {len(names)} boxes"]
    for o in ingest["objects"] or []:
        out.append(f"  {o['object_id']:>10}  {o['category']:<16} x {o['x']:.0f} y {o['y']:.0f} w {o['w']:.0f} h {o['h']:.0f}")
    trace = ImageTrace()
    stages = reader.stages()
    for stage in stages[1:]:
        rows = reader.image_rows(stage, image_id)
        out.append(f"== {stage}: {len(rows)} rows")
        out.extend(_stage_lines(stage, rows, names))
        _add_to_trace(trace, stage, rows)
        for error in reader.image_errors(stage, image_id):
            trace.errors.append((stage, error["reason"]))
            out.append(f"  ERROR {error['reason']}: {error['detail']}")
    last = stages[-1]
    if last in ("tag", "shard") and (why := why_no_output(trace, last)) is not None:
        out.append(f"no relations: {why}")
    return "\n".join(out)


def _add_to_trace(trace: ImageTrace, stage: str, rows: list[dict]) -> None:
    if stage == "caption":
        trace.captions += len(rows)
    elif stage == "parse":
        trace.triplets += sum(len(r["triplets"] or []) for r in rows)
    elif stage == "match":
        trace.pairs += sum(len(r["pairs"] or []) for r in rows)
    elif stage == "tag":
        trace.tag_row = bool(rows)
        trace.relations += sum(len(r["relationships"] or []) for r in rows)


def _stage_lines(stage: str, rows: list[dict], names: dict[int, str]) -> list[str]:
    def box(object_id: int) -> str:
        return f"{names.get(object_id, '?')} {object_id}"

    lines = []
    if stage == "caption":
        for row in sorted(rows, key=lambda r: r["caption_index"]):
            lines.append(f"  [{row['caption_index']}] {row['caption']}")
        if rows:
            lines.append(f"  captioner {rows[0]['captioner']} ({rows[0]['model_id']}) decoding {rows[0]['decoding']}")
    elif stage == "parse":
        for row in sorted(rows, key=lambda r: r["caption_index"]):
            triplets = "; ".join(f"({t['subject_head']}, {t['relation_lemma']}, {t['object_head']})"
                                 for t in row["triplets"] or []) or "(no triplet)"
            lines.append(f"  [{row['caption_index']}] {triplets}")
    elif stage == "match":
        for row in sorted(rows, key=lambda r: r["chunk_index"]):
            lines.append(f"  chunk {row['chunk_index']}: texts {json.dumps(row['relation_texts'])}")
            for pair in row["pairs"] or []:
                texts = ", ".join(p["relation"] for p in pair["proposals"] or []) or "-"
                lines.append(f"    {box(pair['subject_id'])} -> {box(pair['object_id'])}: {texts}")
    else:
        for row in rows:
            extra = f" tagger {row['tagger']} η {row['eta']:g} pairs scored {row['n_pairs']}" if stage == "tag" else ""
            if extra:
                lines.append(" " + extra)
            for rel in sorted(row["relationships"] or [], key=lambda r: (-r["confidence"], r["predicate"])):
                lines.append(f"    {box(rel['subject_id'])} --{rel['predicate']}--> {box(rel['object_id'])}"
                             f"  {rel['confidence']:.3f}  captions {list(rel['caption_indices'] or [])}")
    return lines
