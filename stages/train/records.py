"""One training image's annotations, whatever file they came from.

Shards, Visual Genome scene graphs, the official RLIPv2 pseudo-label JSON and
the downstream benchmarks all become a :class:`Record`: boxes in pixels
(x1, y1, x2, y2), one name per box and relations between box indices. Pixels
are not read here; the image is opened only when a batch needs it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

# RLIPv2 keeps at most this many relations per image (its N_Q is 100-200 pairs).
MAX_RELATIONS = 100


@dataclass(frozen=True)
class Relation:
    subject: int  # index into Record.boxes
    object: int
    predicate: str
    confidence: float = 1.0


@dataclass
class Record:
    image_id: int
    dataset: str
    file_name: str
    image_root: Path
    boxes: list[tuple[float, float, float, float]]  # x1, y1, x2, y2 pixels
    names: list[str]
    relations: list[Relation] = field(default_factory=list)
    width: int = 0  # 0 = unknown until the image is opened
    height: int = 0

    def __post_init__(self) -> None:
        if len(self.boxes) != len(self.names):
            raise ValueError(f"image {self.image_id}: {len(self.boxes)} boxes but {len(self.names)} names")


def select_relations(relations: Iterable[tuple[int, Relation]], eta: float | None,
                     max_relations: int = MAX_RELATIONS) -> list[Relation]:
    """Relations with confidence > η, the ``max_relations`` most confident first.

    Each item carries a tie-break key (the relationship id) so equal
    confidences keep a stable, file-order-independent ranking.
    """
    kept = [(key, rel) for key, rel in relations if eta is None or rel.confidence > eta]
    kept.sort(key=lambda item: (-item[1].confidence, item[0]))
    return [rel for _, rel in kept[:max_relations]]


def _name(value: Any) -> str:
    # VG lists several names per box; the first is the canonical one.
    if isinstance(value, (list, tuple)):
        value = value[0] if value else ""
    return str(value).strip()


def record_from_objects(image_id: int, dataset: str, file_name: str, image_root: Path,
                        objects: list[dict[str, Any]], relationships: list[dict[str, Any]], *,
                        eta: float | None, max_relations: int, name_key: str, width: int = 0,
                        height: int = 0) -> Record:
    """Build a record from xywh objects and id-based relationships (shard and JSON layouts).

    Degenerate boxes are dropped with the relations that use them; relations
    naming unknown object ids are dropped too (a partial graph is still useful).
    """
    index: dict[int, int] = {}
    boxes: list[tuple[float, float, float, float]] = []
    names: list[str] = []
    for obj in objects:
        w, h = float(obj["w"]), float(obj["h"])
        name = _name(obj.get(name_key))
        if not (w > 0 and h > 0) or not name or obj["object_id"] in index:
            continue
        x, y = float(obj["x"]), float(obj["y"])
        index[obj["object_id"]] = len(boxes)
        boxes.append((x, y, x + w, y + h))
        names.append(name)
    candidates = []
    for order, rel in enumerate(relationships):
        s, o = index.get(rel["subject_id"]), index.get(rel["object_id"])
        predicate = str(rel.get("predicate") or "").strip()
        if s is None or o is None or not predicate:
            continue
        confidence = rel.get("confidence")
        confidence = 1.0 if confidence is None else float(confidence)
        key = rel.get("relationship_id", order)
        candidates.append((key if key is not None else order, Relation(s, o, predicate, confidence)))
    return Record(image_id=int(image_id), dataset=dataset, file_name=file_name, image_root=Path(image_root),
                  boxes=boxes, names=names, relations=select_relations(candidates, eta, max_relations),
                  width=int(width or 0), height=int(height or 0))
