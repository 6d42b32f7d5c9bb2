"""``relfactory report``: one self-contained HTML page telling whether a run is good enough to train on.

Everything is inline (CSS, plots and photos as ``data:`` URIs, no script, no
network resource), so the file can be mailed, attached to a Prefect artifact or
opened from a run copied off a cluster.
"""

from __future__ import annotations

import base64
import html
import io
import time
from collections import Counter
from pathlib import Path
from typing import Any

from storage.run_reader import ImageNotFound, RunReader
from storage.run_stats import (PER_IMAGE_UNIT, Distribution, confidence_histogram, confidences, kept_vs_eta,
                               no_output_reasons, per_image_counts, run_eta, stage_overview, trace_images)

_CSS = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}
h1{font-size:1.6em}h2{margin-top:1.6em;border-bottom:1px solid #ccc;padding-bottom:.2em}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ddd;padding:.25em .6em;text-align:left}
th{background:#f3f3f3}td.n{text-align:right;font-variant-numeric:tabular-nums}
.plots{display:flex;flex-wrap:wrap;gap:1em;align-items:flex-start}.plots img{max-width:520px;border:1px solid #eee}
.gallery{display:flex;flex-wrap:wrap;gap:1em;align-items:flex-start}.card{width:500px;border:1px solid #ddd;padding:.5em}
.card img{max-width:100%}summary{cursor:pointer;color:#4477aa}.card ul{font-size:.85em;margin:.3em 0;padding-left:1.2em}.muted{color:#777}
"""


def _png_uri(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _figure_uri(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return _png_uri(buffer.getvalue())


def _plot_histogram(counts: list[int], title: str, xlabel: str) -> str:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    top = max(counts) if counts else 0
    bins = range(0, top + 2) if top <= 40 else 40
    ax.hist(counts, bins=bins, color="#4477aa", edgecolor="white")
    ax.set(title=title, xlabel=xlabel, ylabel="images")
    return _figure_uri(fig)


def _plot_kept_vs_eta(curve: list[tuple[float, int]], eta: float) -> str:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    # A step function: the count changes only where some confidence lies.
    ax.plot([t for t, _ in curve], [n for _, n in curve], marker="o", color="#228833", drawstyle="steps-post")
    ax.axvline(eta, color="#aa3377", linestyle="--", label=f"run's η = {eta:g}")
    ax.set(title="relations kept vs η (confidence > η)", xlabel="η", ylabel="relations kept", xlim=(0, 1))
    ax.legend()
    return _figure_uri(fig)


def _plot_confidence(values: list[float], eta: float) -> str:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    hist = confidence_histogram(values, bins=20)
    ax.bar([lo for lo, _, _ in hist], [c for _, _, c in hist], width=0.05, align="edge", color="#ee6677")
    ax.axvline(eta, color="#222", linestyle="--", label=f"η = {eta:g}")
    ax.set(title="confidence of kept relations", xlabel="confidence", ylabel="relations", xlim=(0, 1))
    ax.legend()
    return _figure_uri(fig)


def _plot_coverage(coverage: list[tuple[str, int, int]]) -> str:
    import matplotlib.pyplot as plt

    shown = coverage[:25]
    fig, ax = plt.subplots(figsize=(5.5, max(2.5, 0.22 * len(shown) + 1)))
    names = [c for c, _, _ in shown][::-1]
    ax.barh(names, [b for _, b, _ in shown][::-1], color="#dddddd", label="boxes")
    ax.barh(names, [r for _, _, r in shown][::-1], color="#4477aa", label="in a relation")
    ax.set(title="per-class coverage (most frequent classes)", xlabel="boxes")
    ax.tick_params(axis="y", labelsize=7)
    ax.legend(fontsize=7)
    return _figure_uri(fig)


def _table(header: list[str], rows: list[list[Any]]) -> str:
    def cell(value: Any) -> str:
        numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
        text = f"{value:.3g}" if isinstance(value, float) else str(value)
        return f"<td class='n'>{html.escape(text)}</td>" if numeric else f"<td>{html.escape(text)}</td>"

    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(cell(v) for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _coverage(reader: RunReader) -> list[tuple[str, int, int]]:
    """Per class: boxes, and boxes that are the subject or object of a shard relation."""
    boxes: Counter = Counter()
    related: Counter = Counter()
    for row in reader.rows("shard", columns=["objects", "relationships"]):
        used = {i for r in row["relationships"] or [] for i in (r["subject_id"], r["object_id"])}
        for obj in row["objects"] or []:
            boxes[obj["names"]] += 1
            related[obj["names"]] += obj["object_id"] in used
    return [(name, count, related[name]) for name, count in boxes.most_common()]


def _triplets(reader: RunReader) -> Counter:
    counts: Counter = Counter()
    for row in reader.rows("shard", columns=["objects", "relationships"]):
        names = {o["object_id"]: o["names"] for o in row["objects"] or []}
        for r in row["relationships"] or []:
            counts[(names.get(r["subject_id"], "?"), r["predicate"], names.get(r["object_id"], "?"))] += 1
    return counts


def _gallery(reader: RunReader, counts: dict[int, int], n: int) -> str:
    from storage.show import render

    # The most related images first (what a reviewer checks), then spread over the rest.
    ranked = sorted((i for i, c in counts.items() if c), key=lambda i: (-counts[i], i))
    chosen = ranked[: max(1, n // 2)] + ranked[max(1, n // 2):][:: max(1, len(ranked) // max(1, n))]
    cards = []
    for image_id in list(dict.fromkeys(chosen))[:n]:
        try:
            image, drawing = render(reader, image_id, "shard" if reader.has_stage("shard") else "tag")
        except ImageNotFound as exc:
            return f"<p class='muted'>gallery skipped: {html.escape(str(exc))}</p>"
        image.thumbnail((500, 500))
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=85)
        items = "".join(f"<li>{html.escape(drawing.describe(arrow))}</li>" for arrow in drawing.arrows[:12])
        more = len(drawing.arrows) - 12
        cards.append(f"<div class='card'><img alt='image {image_id}' src='{_png_uri(buffer.getvalue(), 'image/jpeg')}'>"
                     f"<div>image {image_id}: {counts[image_id]} relations on {len(drawing.arrows)} pairs</div>"
                     f"<ul>{items}{f'<li>… {more} more pairs</li>' if more > 0 else ''}</ul></div>")
    return "<div class='gallery'>" + "".join(cards) + "</div>" if cards else "<p class='muted'>no image has relations</p>"


def build_report(run_dir: Path, images: Path | None = None, gallery: int = 8, top: int = 20) -> str:
    """The HTML text of the report."""
    import matplotlib

    matplotlib.use("Agg")  # files only: never try to open a display
    reader = RunReader(run_dir, images=images)
    manifest = reader.manifest
    config = manifest.get("config") or {}
    sections = [f"<h1>relfactory run <code>{html.escape(reader.name)}</code></h1>",
                f"<p class='muted'>updated {html.escape(str(manifest.get('updated_at', '?')))} · config hash "
                f"{html.escape(str(manifest.get('config_hash', '?')))} · report written "
                f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}</p>"]
    caption, tag = config.get("caption") or {}, config.get("tag") or {}
    sections.append(_table(["setting", "value"], [
        ["dataset", f"{(config.get('dataset') or {}).get('kind', '?')} ({manifest.get('ingest', {}).get('images', '?')} images)"],
        ["captioner", f"{caption.get('backend', '?')} {caption.get('model_id', '') if caption.get('backend') == 'blip' else ''}"],
        ["captions per image (N_cap)", caption.get("n_captions", "?")],
        ["parser", (config.get("parse") or {}).get("parser", "?")],
        ["tagger", f"{tag.get('tagger', '?')} {tag.get('checkpoint') or ''}"],
        ["η", tag.get("eta", "?")]]))

    sections.append("<h2>Stages</h2>")
    sections.append(_table(["stage", "state", "rows", "errors", "error reasons", "compute s (last invocation)"],
                           [[s["stage"], s["state"], s["rows"], s["errors"],
                             ", ".join(f"{k}={v}" for k, v in s["error_reasons"].items()) or "-",
                             s["seconds"] if s["seconds"] is not None else "-"] for s in stage_overview(reader)]))

    sections.append("<h2>Per image</h2>")
    per_stage = {s: per_image_counts(reader, s) for s in ("ingest", "caption", "parse", "match", "tag", "shard")
                 if reader.has_stage(s)}
    rows = [[s, PER_IMAGE_UNIT[s], d.median, d.p95, d.max, d.zeros, f"{d.top1_share:.0%}"]
            for s, d in ((s, Distribution.of(list(c.values()))) for s, c in per_stage.items())]
    sections.append(_table(["stage", "per image", "median", "p95", "max", "images with none", "top 1 % hold"], rows))
    n_captions, n_triplets = sum(per_stage.get("caption", {}).values()), sum(per_stage.get("parse", {}).values())
    parsed = {i for i, n in per_stage.get("parse", {}).items() if n}
    matched = {i for i, n in per_stage.get("match", {}).items() if n}
    sections.append(f"<p>captions per image: {n_captions / max(1, len(per_stage.get('ingest', {}))):.2f} · "
                    f"triplets per caption: {n_triplets / max(1, n_captions):.2f} · match rate: "
                    f"{len(parsed & matched)}/{len(parsed)} images with triplets got candidate pairs</p>")
    plots = []
    relation_stage = "shard" if "shard" in per_stage else "tag"
    if relation_stage in per_stage:
        plots.append(_plot_histogram(list(per_stage[relation_stage].values()), "relations per image", "relations"))
    values, eta = confidences(reader, "tag"), run_eta(reader)
    if values and eta is not None:
        plots.append(_plot_kept_vs_eta(kept_vs_eta(values, eta, steps=20), eta))
        plots.append(_plot_confidence(values, eta))
    coverage = _coverage(reader) if reader.has_stage("shard") else []
    if coverage:
        plots.append(_plot_coverage(coverage))
    sections.append("<div class='plots'>" + "".join(f"<img alt='plot' src='{uri}'>" for uri in plots) + "</div>")

    if relation_stage in per_stage:
        grouped = no_output_reasons(trace_images(reader), relation_stage)
        sections.append(f"<h2>Images without relations ({sum(len(v) for v in grouped.values())})</h2>")
        sections.append(_table(["why", "images", "examples"],
                               [[reason, len(ids), ", ".join(map(str, ids[:8]))] for reason, ids in grouped.items()]))
    else:
        sections.append("<h2>Images without relations</h2><p class='muted'>the tag stage has not run yet</p>")

    if reader.has_stage("shard"):
        predicates = Counter(t[1] for t in _triplets(reader).elements())
        sections.append("<h2>Top relation texts</h2>")
        sections.append(_table(["predicate", "relations"], [[p, c] for p, c in predicates.most_common(top)]))
        sections.append("<h2>Top subject–relation–object triplets</h2>")
        sections.append(_table(["subject", "relation", "object", "relations"],
                               [[s, p, o, c] for (s, p, o), c in _triplets(reader).most_common(top)]))
        sections.append("<h2>Per-class coverage</h2>")
        uncovered = [n for n, _, r in coverage if not r]
        sections.append(f"<p>{len(coverage) - len(uncovered)} of {len(coverage)} classes have a box in a relation; "
                        f"none for: {html.escape(', '.join(uncovered)) or '-'}</p>")
        sections.append(f"<details><summary>every class ({len(coverage)})</summary>"
                        + _table(["class", "boxes", "boxes in a relation", "coverage"],
                                 [[n, b, r, f"{r / b:.0%}"] for n, b, r in coverage]) + "</details>")

    sections.append("<h2>Sample images</h2>")
    if relation_stage in per_stage:
        sections.append(_gallery(reader, per_stage[relation_stage], gallery))
    else:
        sections.append("<p class='muted'>no relations yet</p>")
    title = html.escape(f"relfactory report: {reader.name}")
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{title}</title>"
            f"<style>{_CSS}</style></head><body>{''.join(sections)}</body></html>")


def write_report(run_dir: Path, dest: Path | None = None, images: Path | None = None, gallery: int = 8) -> Path:
    dest = dest or Path(run_dir) / "report.html"
    text = build_report(Path(run_dir), images=images, gallery=gallery)
    dest.parent.mkdir(parents=True, exist_ok=True)
    from storage.atomic import atomic_write

    atomic_write(dest, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return dest
