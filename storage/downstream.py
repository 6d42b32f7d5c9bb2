"""Readers for the downstream benchmarks, and reproducible few-shot subsets.

Formats read here, all produced by public conversion scripts:

* **HICO-DET, PPDM/QPIC format** (``test_hico.json``, ``trainval_hico.json``):
  a list of ``{file_name, annotations: [{bbox: [x1, y1, x2, y2], category_id}],
  hoi_annotation: [{subject_id, object_id, category_id}]}`` where box
  categories are COCO-91 ids and ``hoi_annotation.category_id`` is a verb id
  1..117 in HICO's verb order. ``hico_meta.json`` (objects, verbs, the 600
  ``[hoi, object_idx, verb_idx]`` rows, rare/non-rare) uses 0-based indices
  into its own alphabetical object and verb lists; ``HicoMeta`` bridges the
  two id spaces (COCO-91 id -> object name -> HICO object index; verb id
  ``v`` -> verb index ``v - 1``, checked against the shared sample in tests).
* **V-COCO, QPIC format** (``trainval_vcoco.json``/``test_vcoco.json`` from
  QPIC's ``convert_vcoco_annotations.py``): the same layout with
  ``category_id`` one of the 29 verbs of ``VCOCO_VERBS`` (0-based) and
  ``object_id = -1`` when the role has no object. Good for training; it
  cannot drive the official evaluation because it drops which people V-COCO
  left unannotated, so ``read_vcoco_official`` rebuilds the ground truth of
  ``vsrl_eval`` from the official ``vcoco_*.json`` plus COCO instances.
* **Open Images v6 SGG, RLIPv2's HICO-style conversion**
  (``OI_SGG_test.json`` from RLIPv2's ``convert_OI_annotations.py``): the
  same layout with ``rel_annotations`` instead of ``hoi_annotation``; object
  ids index RLIPv2's Open Images category list, predicates are 0..29.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Literal, Sequence

import numpy as np

# COCO's 80 detection categories with their (non-contiguous) COCO-91 ids.
COCO_CATEGORIES: tuple[tuple[int, str], ...] = (
    (1, "person"), (2, "bicycle"), (3, "car"), (4, "motorcycle"), (5, "airplane"), (6, "bus"),
    (7, "train"), (8, "truck"), (9, "boat"), (10, "traffic light"), (11, "fire hydrant"),
    (13, "stop sign"), (14, "parking meter"), (15, "bench"), (16, "bird"), (17, "cat"), (18, "dog"),
    (19, "horse"), (20, "sheep"), (21, "cow"), (22, "elephant"), (23, "bear"), (24, "zebra"),
    (25, "giraffe"), (27, "backpack"), (28, "umbrella"), (31, "handbag"), (32, "tie"),
    (33, "suitcase"), (34, "frisbee"), (35, "skis"), (36, "snowboard"), (37, "sports ball"),
    (38, "kite"), (39, "baseball bat"), (40, "baseball glove"), (41, "skateboard"),
    (42, "surfboard"), (43, "tennis racket"), (44, "bottle"), (46, "wine glass"), (47, "cup"),
    (48, "fork"), (49, "knife"), (50, "spoon"), (51, "bowl"), (52, "banana"), (53, "apple"),
    (54, "sandwich"), (55, "orange"), (56, "broccoli"), (57, "carrot"), (58, "hot dog"),
    (59, "pizza"), (60, "donut"), (61, "cake"), (62, "chair"), (63, "couch"),
    (64, "potted plant"), (65, "bed"), (67, "dining table"), (70, "toilet"), (72, "tv"),
    (73, "laptop"), (74, "mouse"), (75, "remote"), (76, "keyboard"), (77, "cell phone"),
    (78, "microwave"), (79, "oven"), (80, "toaster"), (81, "sink"), (82, "refrigerator"),
    (84, "book"), (85, "clock"), (86, "vase"), (87, "scissors"), (88, "teddy bear"),
    (89, "hair drier"), (90, "toothbrush"),
)  # fmt: skip
COCO_PERSON_ID = 1

# V-COCO's 26 actions and their roles, in the order of the official files.
VCOCO_ACTIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("hold", ("agent", "obj")), ("stand", ("agent",)), ("sit", ("agent", "instr")),
    ("ride", ("agent", "instr")), ("walk", ("agent",)), ("look", ("agent", "obj")),
    ("hit", ("agent", "instr", "obj")), ("eat", ("agent", "obj", "instr")),
    ("jump", ("agent", "instr")), ("lay", ("agent", "instr")),
    ("talk_on_phone", ("agent", "instr")), ("carry", ("agent", "obj")),
    ("throw", ("agent", "obj")), ("catch", ("agent", "obj")),
    ("cut", ("agent", "instr", "obj")), ("run", ("agent",)),
    ("work_on_computer", ("agent", "instr")), ("ski", ("agent", "instr")),
    ("surf", ("agent", "instr")), ("skateboard", ("agent", "instr")), ("smile", ("agent",)),
    ("drink", ("agent", "instr")), ("kick", ("agent", "obj")), ("point", ("agent", "instr")),
    ("read", ("agent", "obj")), ("snowboard", ("agent", "instr")),
)  # fmt: skip

# QPIC's 29 V-COCO verb classes: each (action, role) pair, or the bare action when
# it has no role; built from VCOCO_ACTIONS the way convert_vcoco_annotations.py does.
VCOCO_VERBS: tuple[str, ...] = tuple(
    name
    for action, roles in VCOCO_ACTIONS
    for name in ([action] if len(roles) == 1 else [f"{action}_{role}" for role in roles[1:]])
)

OnInvalid = Literal["raise", "drop"]


@dataclass(eq=False)
class RelationImage:
    """Ground truth of one image: boxes, their categories and relations between them.

    ``relations`` rows are ``(subject index, object index, predicate id)``; the
    object index is -1 when the relation has no object (V-COCO roles).
    """

    file_name: str
    image_id: int | None
    boxes: np.ndarray  # (N, 4) float64 x1, y1, x2, y2
    labels: np.ndarray  # (N,) int64
    relations: np.ndarray  # (R, 3) int64


def _image_id_from_name(file_name: str) -> int | None:
    """``HICO_test2015_00000001.jpg`` -> 1, ``COCO_val2014_000000000042.jpg`` -> 42, else None."""
    stem = Path(file_name).stem
    if "_" not in stem:
        return None
    tail = stem.rsplit("_", 1)[1]
    return int(tail) if tail.isdigit() else None


def _parse_relation_image(entry: dict, relation_key: str, allow_missing_object: bool) -> RelationImage:
    boxes = np.asarray([a["bbox"] for a in entry["annotations"]], dtype=np.float64).reshape(-1, 4)
    labels = np.asarray([a["category_id"] for a in entry["annotations"]], dtype=np.int64)
    relations = np.asarray(
        [(r["subject_id"], r["object_id"], r["category_id"]) for r in entry.get(relation_key, [])],
        dtype=np.int64,
    ).reshape(-1, 3)
    n = len(boxes)
    low = -1 if allow_missing_object else 0
    bad = (relations[:, 0] < 0) | (relations[:, 0] >= n) | (relations[:, 1] < low) | (relations[:, 1] >= n)
    if bad.any():
        raise ValueError(f"{entry['file_name']}: relation {relations[bad][0].tolist()} points outside its {n} boxes")
    file_name = entry["file_name"]
    image_id = entry.get("img_id", _image_id_from_name(file_name))
    return RelationImage(file_name, None if image_id is None else int(image_id), boxes, labels, relations)


def read_relation_json(
    path: Path | str,
    relation_key: str = "hoi_annotation",
    *,
    allow_missing_object: bool = False,
    on_invalid: OnInvalid = "raise",
) -> list[RelationImage]:
    """Read a PPDM/QPIC-style relation file.

    ``on_invalid="drop"`` skips images whose relations point at boxes that do
    not exist, as QPIC does when it builds its training set; the default
    raises, because a broken test file must not be evaluated quietly.
    """
    with open(path, encoding="utf-8") as f:
        entries = json.load(f)
    images = []
    for entry in entries:
        try:
            images.append(_parse_relation_image(entry, relation_key, allow_missing_object))
        except ValueError:
            if on_invalid == "raise":
                raise
    return images


def read_hico_qpic(path: Path | str, *, on_invalid: OnInvalid = "raise") -> list[RelationImage]:
    """HICO-DET ``test_hico.json`` / ``trainval_hico.json`` (COCO-91 objects, verbs 1..117)."""
    return read_relation_json(path, "hoi_annotation", on_invalid=on_invalid)


def read_vcoco_qpic(path: Path | str, *, on_invalid: OnInvalid = "raise") -> list[RelationImage]:
    """V-COCO in QPIC's format (verbs index ``VCOCO_VERBS``; object -1 = none)."""
    return read_relation_json(path, "hoi_annotation", allow_missing_object=True, on_invalid=on_invalid)


def read_oi_rlipv2(path: Path | str, *, on_invalid: OnInvalid = "raise") -> list[RelationImage]:
    """Open Images v6 SGG in RLIPv2's HICO-style conversion (``rel_annotations``)."""
    return read_relation_json(path, "rel_annotations", on_invalid=on_invalid)


# --------------------------------------------------------------------------- HICO metadata


@dataclass(frozen=True, eq=False)
class HicoMeta:
    """HICO-DET categories (``hico_meta.json``), indexed from the QPIC file ids."""

    objects: tuple[str, ...]  # 80 object names, HICO order, 0-based
    verbs: tuple[str, ...]  # 117 verb names; QPIC verb id v is verbs[v - 1]
    correspondence: np.ndarray  # (600, 3): hoi id, object index, verb index
    rare: frozenset[int]
    non_rare: frozenset[int]

    @property
    def num_hois(self) -> int:
        return len(self.correspondence)

    def hoi_lookup(self) -> np.ndarray:
        """``lookup[coco_id, verb_id]`` -> HOI id (0..599), or -1 for no such HOI class.

        Indexed by COCO-91 object id (0..90) and QPIC verb id (1..117) directly.
        """
        object_index = {name: i for i, name in enumerate(self.objects)}
        coco_to_object = np.full(91, -1, dtype=np.int64)
        for coco_id, name in COCO_CATEGORIES:
            coco_to_object[coco_id] = object_index[name.replace(" ", "_")]
        by_object_verb = np.full((len(self.objects), len(self.verbs) + 1), -1, dtype=np.int64)
        hoi, obj, verb = self.correspondence.T
        by_object_verb[obj, verb + 1] = hoi
        lookup = np.full((91, len(self.verbs) + 1), -1, dtype=np.int64)
        known = coco_to_object >= 0
        lookup[known] = by_object_verb[coco_to_object[known]]
        return lookup

    def hoi_name(self, hoi: int) -> str:
        _, obj, verb = self.correspondence[self.correspondence[:, 0] == hoi][0]
        return f"{self.verbs[verb]} {self.objects[obj]}".replace("_", " ")

    def object_texts(self) -> dict[int, str]:
        """COCO-91 id -> object phrase, the label texts of a zero-shot (NF) run."""
        return {coco_id: name for coco_id, name in COCO_CATEGORIES}

    def verb_texts(self) -> dict[int, str]:
        """QPIC verb id (1..117) -> verb phrase (``"no interaction"``, ``"sit on"`` ...)."""
        return {i + 1: verb.replace("_", " ") for i, verb in enumerate(self.verbs)}


def load_hico_meta(path: Path | str) -> HicoMeta:
    with open(path, encoding="utf-8") as f:
        raw = json.load(f)
    meta = HicoMeta(
        objects=tuple(raw["objects"]),
        verbs=tuple(raw["verbs"]),
        correspondence=np.asarray(raw["correspondence"], dtype=np.int64).reshape(-1, 3),
        rare=frozenset(int(h) for h in raw["rare"]),
        non_rare=frozenset(int(h) for h in raw["non_rare"]),
    )
    hois = meta.correspondence[:, 0]
    problems = []
    if sorted(hois.tolist()) != list(range(len(hois))):
        problems.append("HOI ids are not 0..N-1")
    if meta.rare & meta.non_rare or (meta.rare | meta.non_rare) != set(hois.tolist()):
        problems.append("rare/non_rare do not partition the HOI ids")
    missing = [n for _, n in COCO_CATEGORIES if n.replace(" ", "_") not in meta.objects]
    if missing:
        problems.append(f"COCO categories missing from objects: {missing}")
    if problems:
        raise ValueError(f"{path}: invalid HICO metadata: {'; '.join(problems)}")
    return meta


# --------------------------------------------------------------------------- V-COCO official


@dataclass(eq=False)
class VcocoImage:
    """V-COCO ground truth of one image as ``vsrl_eval`` builds it.

    ``ignore[p]`` marks people V-COCO did not annotate: a detection matched to
    one is neither a true nor a false positive. ``role_boxes[p, a, r]`` is the
    box of role ``r`` (the roles after "agent") of action ``a``, NaN when the
    person does the action without that object (or does not do it).
    """

    image_id: int
    file_name: str
    person_boxes: np.ndarray  # (P, 4)
    ignore: np.ndarray  # (P,) bool
    actions: np.ndarray  # (P, 26) int8, 1 = does the action
    role_boxes: np.ndarray  # (P, 26, 2, 4) float64


def _check_vcoco_actions(raw: list[dict], path: Path | str) -> None:
    found = tuple((a["action_name"], tuple(a["role_name"])) for a in raw)
    if found != VCOCO_ACTIONS:
        raise ValueError(f"{path}: V-COCO actions/roles differ from the official 26: {found[:3]}...")


def _clean_coco_box(bbox: Sequence[float], width: float, height: float) -> tuple[float, float, float, float]:
    """vsrl_eval's box: inclusive corners clipped to the image."""
    x1, y1 = float(bbox[0]), float(bbox[1])
    x2 = x1 + max(0.0, float(bbox[2]) - 1.0)
    y2 = y1 + max(0.0, float(bbox[3]) - 1.0)
    x1, x2 = (min(width - 1.0, max(0.0, v)) for v in (x1, x2))
    y1, y2 = (min(height - 1.0, max(0.0, v)) for v in (y1, y2))
    return x1, y1, x2, y2


def read_vcoco_official(
    vcoco_json: Path | str,
    coco_instances_json: Path | str,
    image_ids: Iterable[int] | None = None,
) -> list[VcocoImage]:
    """The evaluation ground truth of ``vsrl_eval.VCOCOeval`` (images sorted by id).

    ``image_ids`` restricts the images (default: every image of the V-COCO
    file). Boxes are cleaned exactly as ``_add_gt_annotations`` does: COCO
    ``ignore`` boxes dropped, ``x2 = x1 + max(0, w - 1)``, clipped to the
    image, and kept only with positive area and ``x2 > x1``, ``y2 > y1``.
    """
    with open(vcoco_json, encoding="utf-8") as f:
        raw = json.load(f)
    _check_vcoco_actions(raw, vcoco_json)
    with open(coco_instances_json, encoding="utf-8") as f:
        coco = json.load(f)

    annotated: set[int] = set(int(a) for a in raw[0]["ann_id"])
    # positive[action][ann_id] -> role object ids (after the agent) of that labelled row.
    positive: list[dict[int, list[int]]] = []
    for action in raw:
        roles = np.asarray(action["role_object_id"], dtype=np.int64).reshape(len(action["role_name"]), -1).T
        labels = np.asarray(action["label"], dtype=np.int64).reshape(-1)
        ann_ids = np.asarray(action["ann_id"], dtype=np.int64).reshape(-1)
        positive.append({int(a): roles[i, 1:].tolist() for i, a in enumerate(ann_ids) if labels[i] == 1})

    wanted = sorted({int(i) for i in raw[0]["image_id"]} if image_ids is None else {int(i) for i in image_ids})
    images_by_id = {int(im["id"]): im for im in coco["images"]}
    anns_by_image: dict[int, list[dict]] = {}
    for ann in coco["annotations"]:
        anns_by_image.setdefault(int(ann["image_id"]), []).append(ann)
    missing = [i for i in wanted if i not in images_by_id]
    if missing:
        raise ValueError(f"{coco_instances_json}: no COCO image for V-COCO image ids {missing[:5]}")

    num_actions = len(VCOCO_ACTIONS)
    out = []
    for image_id in wanted:
        info = images_by_id[image_id]
        valid = []
        for ann in anns_by_image.get(image_id, []):
            if ann.get("ignore", 0) == 1:
                continue
            box = _clean_coco_box(ann["bbox"], float(info["width"]), float(info["height"]))
            if ann["area"] > 0 and box[2] > box[0] and box[3] > box[1]:
                valid.append((int(ann["id"]), int(ann["category_id"]), box))
        box_of = {ann_id: box for ann_id, _, box in valid}
        people = [(ann_id, box) for ann_id, category, box in valid if category == COCO_PERSON_ID]
        person_boxes = np.asarray([box for _, box in people], dtype=np.float64).reshape(-1, 4)
        ignore = np.asarray([ann_id not in annotated for ann_id, _ in people], dtype=bool)
        actions = np.zeros((len(people), num_actions), dtype=np.int8)
        role_boxes = np.full((len(people), num_actions, 2, 4), np.nan)
        for p, (ann_id, _) in enumerate(people):
            for a in range(num_actions):
                role_ids = positive[a].get(ann_id)
                if role_ids is None:
                    continue
                actions[p, a] = 1
                for r, role_id in enumerate(role_ids):
                    if role_id == 0:
                        continue
                    if role_id not in box_of:
                        raise ValueError(
                            f"V-COCO image {image_id}: role object {role_id} of {VCOCO_ACTIONS[a][0]} "
                            "is not a valid COCO box of the image"
                        )
                    role_boxes[p, a, r] = box_of[role_id]
        out.append(VcocoImage(image_id, str(info["file_name"]), person_boxes, ignore, actions, role_boxes))
    return out


# --------------------------------------------------------------------------- few-shot subsets


def few_shot_indices(images: Sequence[RelationImage], percent: float, seed: int) -> np.ndarray:
    """Indices (sorted) of a reproducible ``percent`` % subset of ``images``.

    Follows RLIPv2's ``select_percentage``: the subset must contain every
    predicate and every object category of the full set, and is otherwise a
    uniform sample of ``int(len * percent / 100)`` images. RLIPv2 reaches
    coverage by unseeded resampling until it happens; here it is constructive
    and seeded: one image per predicate (ascending id), then one per still
    missing category, then a uniform fill. The subset may exceed the target
    size when coverage needs more images than the budget.
    """
    if not 0 < percent <= 100:
        raise ValueError(f"percent must be in (0, 100], got {percent}")
    n = len(images)
    target = max(1, int(n * percent / 100.0))
    rng = np.random.default_rng(seed)
    chosen: set[int] = set()

    def cover(groups: dict[int, list[int]]) -> None:
        for key in sorted(groups):
            members = groups[key]
            if not any(i in chosen for i in members):
                chosen.add(int(members[rng.integers(len(members))]))

    by_predicate: dict[int, list[int]] = {}
    by_category: dict[int, list[int]] = {}
    for i, image in enumerate(images):
        for predicate in np.unique(image.relations[:, 2]).tolist():
            by_predicate.setdefault(predicate, []).append(i)
        for category in np.unique(image.labels).tolist():
            by_category.setdefault(category, []).append(i)
    cover(by_predicate)
    cover(by_category)
    rest = np.asarray([i for i in range(n) if i not in chosen], dtype=np.int64)
    fill = max(0, target - len(chosen))
    if fill:
        chosen.update(rng.choice(rest, size=min(fill, len(rest)), replace=False).tolist())
    return np.asarray(sorted(chosen), dtype=np.int64)


def few_shot_subset(images: Sequence[RelationImage], percent: float, seed: int) -> list[RelationImage]:
    """The images of ``few_shot_indices``, in their original order."""
    return [images[i] for i in few_shot_indices(images, percent, seed)]
