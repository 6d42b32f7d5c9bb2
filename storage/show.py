"""``relfactory show``: one image with its boxes and relations drawn on the photo.

Boxes are drawn at the annotation's pixel coordinates on the full-resolution
photo (so what a user sees is exactly where the labels are), each object in its
own colour; every related subject-object pair gets one arrow from the subject's
box centre to the object's, labelled with its predicates (and confidences for the
``tag``/``shard`` stages, or the caption-proposed texts for ``match``).
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont, ImageOps

from storage.run_reader import InspectionError, RunReader

# Saturated, mutually distinct colours: boxes cycle through them by object order.
BOX_COLORS: tuple[tuple[int, int, int], ...] = (
    (230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180),
    (70, 240, 240), (240, 50, 230), (210, 245, 60), (0, 128, 128), (170, 110, 40),
)
ARROW_COLOR = (255, 225, 25)
BOX_WIDTH = 3
ARROW_WIDTH = 3
SHOW_STAGES = ("tag", "shard", "match")


@dataclass
class Arrow:
    subject_id: int
    object_id: int
    start: tuple[float, float]
    end: tuple[float, float]
    labels: list[str] = field(default_factory=list)


@dataclass
class Drawing:
    """What was drawn, in the photo's pixel coordinates (for tests and the report)."""

    image_id: int
    size: tuple[int, int]
    boxes: dict[int, tuple[float, float, float, float]]  # object id -> x0, y0, x1, y1
    colors: dict[int, tuple[int, int, int]]
    arrows: list[Arrow]
    names: dict[int, str] = field(default_factory=dict)  # object id -> category

    def describe(self, arrow: Arrow) -> str:
        """``person 12 -> bench 34: sit on 0.91, on 0.40`` for one arrow."""
        return (f"{self.names.get(arrow.subject_id, '?')} {arrow.subject_id} -> "
                f"{self.names.get(arrow.object_id, '?')} {arrow.object_id}: {', '.join(arrow.labels)}")


def box_color(index: int) -> tuple[int, int, int]:
    return BOX_COLORS[index % len(BOX_COLORS)]


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: fixed-size bitmap font
        return ImageFont.load_default()


def _centre(box: tuple[float, float, float, float]) -> tuple[float, float]:
    return (box[0] + box[2]) / 2, (box[1] + box[3]) / 2


def relation_pairs(reader: RunReader, image_id: int, stage: str) -> dict[tuple[int, int], list[str]]:
    """Per (subject, object) pair, the label lines the stage gives it."""
    if stage not in SHOW_STAGES:
        raise InspectionError(f"show draws the {', '.join(SHOW_STAGES)} stages, not {stage!r}")
    pairs: dict[tuple[int, int], list[str]] = defaultdict(list)
    for row in reader.image_rows(stage, image_id):
        if stage == "match":
            for pair in row["pairs"] or []:
                texts = [p["relation"] for p in pair["proposals"] or []]
                pairs[(pair["subject_id"], pair["object_id"])].append(", ".join(texts) if texts else "(candidate)")
        else:
            for rel in sorted(row["relationships"] or [], key=lambda r: -r["confidence"]):
                pairs[(rel["subject_id"], rel["object_id"])].append(f"{rel['predicate']} {rel['confidence']:.2f}")
    return dict(pairs)


def layout(reader: RunReader, image_id: int, stage: str = "tag") -> Drawing:
    """Boxes from ingest (the annotations), arrows from the stage's pairs."""
    ingest = reader.ingest_row(image_id)
    objects = ingest["objects"] or []
    boxes = {o["object_id"]: (o["x"], o["y"], o["x"] + o["w"], o["y"] + o["h"]) for o in objects}
    colors = {o["object_id"]: box_color(i) for i, o in enumerate(objects)}
    arrows = [Arrow(s, o, _centre(boxes[s]), _centre(boxes[o]), labels)
              for (s, o), labels in sorted(relation_pairs(reader, image_id, stage).items())
              if s in boxes and o in boxes]
    names = {o["object_id"]: o["category"] for o in objects}
    return Drawing(image_id, (ingest["width"], ingest["height"]), boxes, colors, arrows, names)


def render(reader: RunReader, image_id: int, stage: str = "tag", max_labels: int = 4,
           all_names: bool = False) -> tuple[Image.Image, Drawing]:
    """The photo with the drawing on it, at the annotation's resolution."""
    drawing = layout(reader, image_id, stage)
    with Image.open(reader.image_path(image_id)) as photo:
        # Oriented as the pipeline saw it (and as annotators did): EXIF rotation applied.
        image = ImageOps.exif_transpose(photo).convert("RGB")
    if image.size != drawing.size:
        # Annotations are in the declared size (EXIF rotation and re-encodes aside): draw in that frame.
        image = image.resize(drawing.size)
    draw = ImageDraw.Draw(image)
    scale = max(drawing.size) / 640
    font = _font(max(10, round(12 * scale)))
    names = drawing.names
    related = {i for a in drawing.arrows for i in (a.subject_id, a.object_id)}
    # Boxes no relation touches stay thin and unnamed, so a crowded photo stays readable.
    for object_id, box in drawing.boxes.items():
        if object_id not in related and not all_names:
            draw.rectangle([round(v) for v in box], outline=drawing.colors[object_id], width=1)
    placed: list[tuple[float, float, float, float]] = []
    for arrow in drawing.arrows:
        lines = arrow.labels[:max_labels] + ([f"+{len(arrow.labels) - max_labels} more"]
                                             if len(arrow.labels) > max_labels else [])
        _label(draw, _label_position(draw, arrow, "\n".join(lines), font, placed), "\n".join(lines), font,
               ARROW_COLOR)
    # Geometry goes over the text: in a crowded photo every arrow and box stays whole and visible.
    for arrow in drawing.arrows:
        _arrow(draw, arrow.start, arrow.end, max(8.0, 10 * scale))
    for object_id, box in drawing.boxes.items():
        if object_id in related or all_names:
            draw.rectangle([round(v) for v in box], outline=drawing.colors[object_id], width=BOX_WIDTH)
    for object_id, box in drawing.boxes.items():
        if object_id in related or all_names:
            # Inside the top-left corner, clear of the box's own outline.
            _label(draw, (box[0] + BOX_WIDTH + 1, box[1] + BOX_WIDTH + 1), f"{names[object_id]} {object_id}", font,
                   drawing.colors[object_id])
    return image, drawing


def _label_position(draw: ImageDraw.ImageDraw, arrow: Arrow, text: str, font: ImageFont.ImageFont,
                    placed: list[tuple[float, float, float, float]]) -> tuple[float, float]:
    """A point along the arrow where the label overlaps no earlier label, if there is one.

    Two thirds along first, so the labels of a pair's two directions do not coincide.
    """
    def at(t: float) -> tuple[float, float]:
        return (arrow.start[0] + (arrow.end[0] - arrow.start[0]) * t,
                arrow.start[1] + (arrow.end[1] - arrow.start[1]) * t)

    for t in (0.66, 0.5, 0.8, 0.4, 0.9, 0.3):
        box = draw.multiline_textbbox(at(t), text, font=font)
        if not any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in placed):
            placed.append(box)
            return at(t)
    placed.append(draw.multiline_textbbox(at(0.66), text, font=font))
    return at(0.66)


def _arrow(draw: ImageDraw.ImageDraw, start: tuple[float, float], end: tuple[float, float], head: float) -> None:
    draw.line([start, end], fill=ARROW_COLOR, width=ARROW_WIDTH)
    angle = math.atan2(end[1] - start[1], end[0] - start[0])
    left = (end[0] - head * math.cos(angle - 0.45), end[1] - head * math.sin(angle - 0.45))
    right = (end[0] - head * math.cos(angle + 0.45), end[1] - head * math.sin(angle + 0.45))
    draw.polygon([end, left, right], fill=ARROW_COLOR)


def _label(draw: ImageDraw.ImageDraw, at: tuple[float, float], text: str, font: ImageFont.ImageFont,
           color: tuple[int, int, int]) -> None:
    x0, y0, x1, y1 = draw.multiline_textbbox(at, text, font=font)
    draw.rectangle([x0 - 2, y0 - 2, x1 + 2, y1 + 2], fill=(0, 0, 0))
    draw.multiline_text(at, text, font=font, fill=color)


def default_image(reader: RunReader, stage: str) -> int:
    """The image with the most relations (or candidate pairs): the one worth looking at first."""
    best, best_count = None, -1
    column = "pairs" if stage == "match" else "relationships"
    for row in reader.rows(stage, columns=["image_id", column]):
        count = len(row[column] or [])
        if count > best_count:
            best, best_count = row["image_id"], count
    if best is None:
        raise InspectionError(f"run {reader.name} has no {stage} rows to show")
    return best


def show_image(run_dir: Path, image_id: int | None, stage: str, dest: Path | None,
               images: Path | None = None) -> tuple[Path, Drawing]:
    """Render one image of a run to PNG; returns the file and what was drawn."""
    reader = RunReader(run_dir, images=images)
    if image_id is None:
        image_id = default_image(reader, stage)
    image, drawing = render(reader, image_id, stage)
    dest = dest or Path(f"{reader.name}-{image_id}-{stage}.png")
    dest.parent.mkdir(parents=True, exist_ok=True)
    image.save(dest, format="PNG")
    return dest, drawing
