"""Box geometry for pixel-free taggers: overlap, distance, containment, relative position.

Boxes are INGEST objects (``x, y, w, h`` in pixels). Every score here is in
[0, 1] and depends only on the two boxes (and, for salience, the image), so a
tagger's decision can be explained from the layout alone.
"""

from __future__ import annotations

import math

from pipeline.contracts import Row

# Relation words that state where the subject is relative to the object. Closed
# class English prepositions, written from grammar, not read off any dataset.
_ABOVE = frozenset({"on", "onto", "atop", "above", "over", "top", "upon"})
_BELOW = frozenset({"under", "below", "beneath", "underneath"})
_BESIDE = frozenset({"beside", "next", "near", "by", "alongside", "besides"})
_INSIDE = frozenset({"in", "inside", "within", "into"})
_DEPTH = frozenset({"behind", "front"})  # "behind", "in front of"
# A pair whose layout contradicts its relation keeps this share of its affinity:
# a soft penalty, because boxes are 2-D and captions are loose ("on the beach").
SPATIAL_MISMATCH = 0.5


def area(box: Row) -> float:
    return max(float(box["w"]), 0.0) * max(float(box["h"]), 0.0)


def centre(box: Row) -> tuple[float, float]:
    return float(box["x"]) + float(box["w"]) / 2, float(box["y"]) + float(box["h"]) / 2


def intersection(a: Row, b: Row) -> float:
    ix = min(a["x"] + a["w"], b["x"] + b["w"]) - max(a["x"], b["x"])
    iy = min(a["y"] + a["h"], b["y"] + b["h"]) - max(a["y"], b["y"])
    return ix * iy if ix > 0 and iy > 0 else 0.0


def box_iou(a: Row, b: Row) -> float:
    """Intersection over union of two x, y, w, h boxes (0.0 for empty boxes)."""
    inter = intersection(a, b)
    if inter <= 0:
        return 0.0
    union = area(a) + area(b) - inter
    return inter / union if union > 0 else 0.0


def inside_share(inner: Row, outer: Row) -> float:
    """The share of ``inner``'s area that lies inside ``outer`` (0.0 for an empty box)."""
    inner_area = area(inner)
    return intersection(inner, outer) / inner_area if inner_area > 0 else 0.0


def scaled_distance(a: Row, b: Row) -> float:
    """Centre distance in units of the pair's size (sqrt of the summed areas): 0 for concentric boxes.

    Scaling by the boxes' own size makes "close" mean the same for a child with
    a kite in the distance and a man at a table in the foreground.
    """
    (ax, ay), (bx, by) = centre(a), centre(b)
    scale = math.sqrt(area(a) + area(b))
    return math.hypot(ax - bx, ay - by) / scale if scale > 0 else math.inf


def affinity(subject: Row, obj: Row) -> float:
    """How strongly the layout says two boxes interact, in (0, 1].

    Touching boxes always beat separate ones (0.5 and up, more with overlap,
    saturating at IoU 1/3: a bigger overlap is not much more evidence than a
    clear one); separate boxes score by proximity, exp of minus their scaled
    centre distance, below 0.5.
    """
    overlap = box_iou(subject, obj)
    if overlap > 0:
        return 0.5 + 0.5 * min(1.0, 3.0 * overlap)
    return max(0.5 * math.exp(-scaled_distance(subject, obj)), 1e-6)


def spatial_agreement(relation: str, subject: Row, obj: Row) -> float:
    """1.0 when the layout agrees with a spatial relation (or the relation is not spatial), else
    :data:`SPATIAL_MISMATCH`: "on"/"above" wants the subject higher, "under" lower, "in" inside,
    "next to" side by side, "behind"/"in front of" overlapping."""
    words = set(relation.lower().split())
    (sx, sy), (ox, oy) = centre(subject), centre(obj)
    agrees = True
    if words & _INSIDE and not words & _DEPTH:
        agrees = inside_share(subject, obj) >= 0.5
    elif words & _ABOVE:
        agrees = sy <= oy
    elif words & _BELOW:
        agrees = sy >= oy
    elif words & _BESIDE:
        agrees = abs(sx - ox) >= abs(sy - oy) and inside_share(subject, obj) < 0.9
    elif words & _DEPTH:
        agrees = intersection(subject, obj) > 0
    return 1.0 if agrees else SPATIAL_MISMATCH


def salience(box: Row, image: Row, largest_area: float) -> float:
    """How prominent a box is, in [0, 1]: its size relative to the largest candidate, times how central it is.

    Captions describe large, central things first, so among equally placed
    candidates the prominent one is the likelier subject.
    """
    size = math.sqrt(area(box) / largest_area) if largest_area > 0 else 0.0
    width = float(image.get("width") or 0) or max(float(box["x"] + box["w"]), 1.0)
    height = float(image.get("height") or 0) or max(float(box["y"] + box["h"]), 1.0)
    cx, cy = centre(box)
    off_centre = math.hypot(cx / width - 0.5, cy / height - 0.5) / math.hypot(0.5, 0.5)
    return size * (1.0 - 0.5 * min(off_centre, 1.0))
