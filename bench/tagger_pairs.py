"""Pair-assignment benchmark: does a tagger put a relation on the right boxes?

Ground truth with real boxes and true pairs: HICO-DET in fredzzhang/hicodet's
format (``instances_test2015.json``: per image ``boxes_h``, ``boxes_o`` as
x1y1x2y2, ``object``, ``verb``; ``objects``, ``verbs``, ``filenames``, ``size``).
Per image:

* boxes are de-duplicated (same class, IoU >= 0.7: HICO-DET draws a box per
  annotated interaction, so one person appears many times);
* every (verb, object class) of the ground truth becomes a proposal for the
  class pair (person, object), as if a caption had said "a person <verb> a
  <object>"; its candidates are every person box x every box of that class;
* the tagger runs through the real tag stage (``stages.tag.run_tag``) on
  MATCH rows built by the real match code (``stages.match.match_image``), so
  this measures what users run, caps and η included;
* (verb, subject box, object box) triplets are scored: precision, recall and
  F1 over all images and over the "ambiguous" ones (some proposal has more than
  one candidate pair).

What the tagger is told about number: nothing. Benchmark proposals have no
caption, so by default their phrases carry no number ("unknown"), exactly as a
caption without one would. ``--oracle-number`` instead writes each side's true
count into the proposal ("two persons ... a bicycle"), i.e. what a perfect
caption would say; it reads the answer's pair structure, so it is reported
apart and labelled, never as a tagger's result.

    .venv/bin/python bench/tagger_pairs.py                      # every pixel-free tagger on the dev file
    .venv/bin/python bench/tagger_pairs.py --taggers layout --eta-sweep 0.05,0.1,0.2,0.4,0.6
    .venv/bin/python bench/tagger_pairs.py --taggers rtagger --checkpoint rtagger.pt --images hico/images/test2015

The R-Tagger needs the pixels: ``--images DIR`` is the folder holding the
annotation file's ``filenames`` (HICO-DET's ``images/test2015``).

``--oracle-ceilings`` prints what answers built from the ground truth score,
to bound what a pixel-free tagger can reach (labelled, never a tagger's result):

* ``oracle[verb-blind]``: knows which pairs interact (with any verb of the
  class; for a negated relation, which pairs are marked as not interacting) but
  not which verb, and takes them all. The layout shows at most this much.
* ``oracle[twin-blind]``: knows the true pairs but cannot tell a box from its
  same-class twins (IoU >= the layout's TWIN_IOU), so takes the twins too.
* ``oracle[verb+twin-blind]``: both at once.
* ``<tagger>[∩verb-blind]``: the tagger's pairs, less those the verb-blind
  oracle knows interact with nothing: what its choice would score if it also
  knew who interacts.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.config import RunConfig  # noqa: E402
from pipeline.contracts import Row  # noqa: E402
from stages.match import match_image  # noqa: E402
from stages.tag import run_tag  # noqa: E402
from stages.taggers.layout import TWIN_IOU, is_negated  # noqa: E402
from stages.vocab import class_key  # noqa: E402

DEFAULT_ANNOTATIONS = Path(__file__).resolve().parents[2] / "shared" / "data" / "hico-det" / "instances_test2015.dev.json"
DEDUP_IOU = 0.7
PERSON = "person"
NUMBER_WORDS = {1: "a", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight", 9: "nine",
                10: "ten"}
# name -> tag config overrides; the pixel-free taggers run by default.
TAGGER_SETTINGS: dict[str, dict[str, Any]] = {
    "greedy": {"tagger": "greedy"},
    "greedy+overlap": {"tagger": "greedy", "require_overlap": True},
    "greedy-all": {"tagger": "greedy-all"},
    "greedy-all+overlap": {"tagger": "greedy-all", "require_overlap": True},
    "nearest": {"tagger": "nearest"},
    "layout": {"tagger": "layout"},
    "rtagger": {"tagger": "rtagger"},
    "clip": {"tagger": "clip"},  # RLIPv2 Tab. 5's CLIP baseline, without and with the overlap prior
    "clip+overlap": {"tagger": "clip", "require_overlap": True},
}
DEFAULT_TAGGERS = ("greedy", "greedy+overlap", "greedy-all", "greedy-all+overlap", "nearest", "layout")
# Taggers that read the proposals' number; only they get an --oracle-number line.
READS_NUMBER = frozenset({"layout"})

Triplet = tuple[str, int, int]  # (relation text, subject object_id, object object_id)


@dataclass
class BenchImage:
    image_id: int
    file_name: str
    width: int
    height: int
    boxes: list[tuple[str, list[float]]]  # (category, x1y1x2y2); object_id = index + 1
    truth: set[Triplet] = field(default_factory=set)
    proposals: list[tuple[str, str]] = field(default_factory=list)  # (relation, object category)

    def candidates(self, object_category: str) -> list[tuple[int, int]]:
        people = [i + 1 for i, (c, _) in enumerate(self.boxes) if c == PERSON]
        objects = [i + 1 for i, (c, _) in enumerate(self.boxes) if c == object_category]
        return [(s, o) for s in people for o in objects if s != o]

    @property
    def ambiguous(self) -> bool:
        return any(len(self.candidates(category)) > 1 for _, category in self.proposals)


def _iou(a: list[float], b: list[float]) -> float:
    ix = min(a[2], b[2]) - max(a[0], b[0])
    iy = min(a[3], b[3]) - max(a[1], b[1])
    if ix <= 0 or iy <= 0:
        return 0.0
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def _text(name: str) -> str:
    return name.replace("_", " ")


def load_hicodet(path: Path, max_images: int | None = None) -> list[BenchImage]:
    """The benchmark images of an annotation file in fredzzhang/hicodet's format."""
    import json

    data = json.loads(Path(path).read_text())
    objects = [_text(name) for name in data["objects"]]
    verbs = [_text(name) for name in data["verbs"]]
    images = []
    for index, annotation in enumerate(data["annotation"][:max_images]):
        width, height = data["size"][index]
        image = BenchImage(index + 1, data["filenames"][index], int(width), int(height), [])

        def box_id(category: str, box: list[float], image: BenchImage = image) -> int:
            for i, (known_category, known) in enumerate(image.boxes):
                if known_category == category and _iou(known, box) >= DEDUP_IOU:
                    return i + 1
            image.boxes.append((category, [float(v) for v in box]))
            return len(image.boxes)

        for human, obj, object_index, verb_index in zip(annotation["boxes_h"], annotation["boxes_o"],
                                                        annotation["object"], annotation["verb"]):
            subject_id = box_id(PERSON, human)
            object_id = box_id(objects[object_index], obj)
            image.truth.add((verbs[verb_index], subject_id, object_id))
        image.proposals = sorted({(verb, image.boxes[o - 1][0]) for verb, _, o in image.truth})
        images.append(image)
    return images


def ingest_row(image: BenchImage) -> Row:
    return {
        "image_id": image.image_id, "file_name": image.file_name, "width": image.width, "height": image.height,
        "dataset": "hico-det", "data_split": "test",
        "objects": [{"object_id": i + 1, "category_id": 0, "category": category, "x": b[0], "y": b[1],
                     "w": b[2] - b[0], "h": b[3] - b[1]} for i, (category, b) in enumerate(image.boxes)],
    }


class _ClassNameMatcher:
    """The benchmark's phrases name their class exactly, so matching is the identity on class keys."""

    def match(self, span: str | None, head: str | None = None) -> str | None:
        return class_key(head) if head else None


def parse_rows(image: BenchImage, oracle_number: bool) -> list[Row]:
    """One "caption" per proposal: ⟨person, verb, object⟩, with each side's true count only if ``oracle_number``."""
    rows = []
    for index, (relation, category) in enumerate(image.proposals):
        subject_phrase = object_phrase = None
        if oracle_number:
            pairs = [(s, o) for r, s, o in image.truth if r == relation and image.boxes[o - 1][0] == category]
            subject_phrase = _counted(len({s for s, _ in pairs}), PERSON)
            object_phrase = _counted(len({o for _, o in pairs}), category)
        triplet = {"subject": subject_phrase, "subject_head": PERSON, "relation": relation, "relation_lemma": relation,
                   "object": object_phrase, "object_head": category}
        rows.append({"image_id": image.image_id, "caption_index": index, "caption": "", "parser": "bench",
                     "triplets": [triplet]})
    return rows


def _counted(count: int, noun: str) -> str:
    return f"{NUMBER_WORDS.get(count, str(count))} {noun if count == 1 else noun + 's'}"


def match_rows(images: list[BenchImage], oracle_number: bool) -> list[Row]:
    cfg = RunConfig()
    matcher = _ClassNameMatcher()
    rows: list[Row] = []
    for image in images:
        rows.extend(match_image(ingest_row(image), parse_rows(image, oracle_number), matcher, cfg))  # type: ignore[arg-type]
    return rows


def twin_statistics(images: list[BenchImage], low: float = 0.3) -> tuple[int, float, int, float]:
    """(slots with a twin, share of them true, slots without, share true) over (verb, object box) slots.

    A twin is another box of the same class at ``low`` <= IoU < the de-dup
    threshold: HICO-DET's per-interaction boxes of one thing that the de-dup
    kept apart. Which twin carries which verb is not in the layout, which
    bounds what any pixel-free tagger can reach here.
    """
    counts = {True: [0, 0], False: [0, 0]}
    for image in images:
        for verb, category in image.proposals:
            ids = [i + 1 for i, (c, _) in enumerate(image.boxes) if c == category]
            true_objects = {o for v, _, o in image.truth if v == verb}
            for o in ids:
                twin = any(low <= _iou(image.boxes[o - 1][1], image.boxes[j - 1][1]) < DEDUP_IOU for j in ids if j != o)
                counts[twin][0] += 1
                counts[twin][1] += o in true_objects
    (n_twin, true_twin), (n_single, true_single) = counts[True], counts[False]
    return n_twin, true_twin / max(n_twin, 1), n_single, true_single / max(n_single, 1)


@dataclass
class Score:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    def add(self, predicted: set[Triplet], truth: set[Triplet]) -> None:
        self.tp += len(predicted & truth)
        self.fp += len(predicted - truth)
        self.fn += len(truth - predicted)

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def line(self) -> str:
        return f"P {self.precision:.3f} R {self.recall:.3f} F1 {self.f1:.3f}"


def evaluate(images: list[BenchImage], tag: dict[str, Any], *, oracle_number: bool = False,
             image_root: Path | None = None, match: list[Row] | None = None) -> tuple[Score, Score]:
    """(all images, ambiguous images) scores of one tagger configuration through the tag stage."""
    return score(images, predict(images, tag, oracle_number=oracle_number, image_root=image_root, match=match))


def predict(images: list[BenchImage], tag: dict[str, Any], *, oracle_number: bool = False,
            image_root: Path | None = None, match: list[Row] | None = None) -> dict[int, set[Triplet]]:
    """Each image's relations from one tagger configuration, through the tag stage."""
    cfg = RunConfig(tag=tag)
    inputs = {"ingest": [ingest_row(image) for image in images],
              "match": match if match is not None else match_rows(images, oracle_number)}
    out = run_tag(inputs, cfg, image_root=image_root if image_root is not None else Path("."))
    return {row["image_id"]: {(r["predicate"], r["subject_id"], r["object_id"]) for r in row["relationships"]}
            for row in out.rows}


def _interacting(image: BenchImage, category: str, negated: bool) -> set[tuple[int, int]]:
    """The image's true pairs with a ``category`` object whose verb is (not) negated, whatever the verb."""
    return {(s, o) for verb, s, o in image.truth
            if image.boxes[o - 1][0] == category and is_negated(verb) == negated}


def oracle_predictions(images: list[BenchImage], verb_blind: bool, twin_blind: bool) -> dict[int, set[Triplet]]:
    """Answers built from the ground truth (see the module docstring): bounds, not tagger results."""
    predicted: dict[int, set[Triplet]] = {}
    for image in images:
        found: set[Triplet] = set()
        for relation, category in image.proposals:
            pairs = (_interacting(image, category, is_negated(relation)) if verb_blind else
                     {(s, o) for r, s, o in image.truth if r == relation and image.boxes[o - 1][0] == category})
            if twin_blind:
                pairs = {(ts, to) for s, o in pairs for ts in _twins(image, s) for to in _twins(image, o)}
            found |= {(relation, s, o) for s, o in pairs}
        predicted[image.image_id] = found
    return predicted


def _twins(image: BenchImage, box_id: int) -> list[int]:
    """``box_id`` and the image's boxes of its class overlapping it by at least TWIN_IOU."""
    category, box = image.boxes[box_id - 1]
    return [i + 1 for i, (c, other) in enumerate(image.boxes)
            if i + 1 == box_id or (c == category and _iou(box, other) >= TWIN_IOU)]


def restrict_to_interacting(images: list[BenchImage], predicted: dict[int, set[Triplet]]) -> dict[int, set[Triplet]]:
    """``predicted`` less the pairs the verb-blind oracle knows do not interact."""
    known = oracle_predictions(images, verb_blind=True, twin_blind=False)
    return {image_id: found & known.get(image_id, set()) for image_id, found in predicted.items()}


def score(images: list[BenchImage], predicted: dict[int, set[Triplet]]) -> tuple[Score, Score]:
    """(all images, ambiguous images) scores of predicted triplets."""
    everything, ambiguous = Score(), Score()
    for image in images:
        found = predicted.get(image.image_id, set())
        everything.add(found, image.truth)
        if image.ambiguous:
            ambiguous.add(found, image.truth)
    return everything, ambiguous


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--annotations", type=Path, default=DEFAULT_ANNOTATIONS,
                        help="HICO-DET ground truth in fredzzhang/hicodet's format (default: the shared dev file)")
    parser.add_argument("--taggers", default=",".join(DEFAULT_TAGGERS),
                        help=f"comma-separated, from: {', '.join(TAGGER_SETTINGS)}")
    parser.add_argument("--eta", type=float, default=None, help="η for every tagger (default: the tag default)")
    parser.add_argument("--eta-sweep", default=None, help="comma-separated η values: one line per tagger and η")
    parser.add_argument("--no-caps", action="store_true", help="no cap on relations per image / per proposal")
    parser.add_argument("--oracle-number", action="store_true",
                        help="also run each tagger with the true counts written into the proposals (labelled)")
    parser.add_argument("--images", type=Path, help="image folder (needed by --taggers rtagger)")
    parser.add_argument("--checkpoint", type=Path, help="R-Tagger checkpoint for --taggers rtagger")
    parser.add_argument("--device", default="auto", help="R-Tagger / CLIP device")
    parser.add_argument("--clip-model", help="CLIP id or directory for --taggers clip (default ViT-B/32)")
    parser.add_argument("--max-images", type=int, help="only the first N images")
    parser.add_argument("--oracle-ceilings", action="store_true",
                        help="also print answers built from the ground truth that bound pixel-free taggers "
                             "(verb-blind, twin-blind; labelled, not tagger results)")
    parser.add_argument("--twin-stats", action="store_true",
                        help="also print how many (verb, object box) slots have a same-class twin box, and how often "
                             "such slots are true")
    args = parser.parse_args(argv)

    names = [name.strip() for name in args.taggers.split(",") if name.strip()]
    unknown = [name for name in names if name not in TAGGER_SETTINGS]
    if unknown:
        parser.error(f"unknown tagger(s) {', '.join(unknown)}; known: {', '.join(TAGGER_SETTINGS)}")
    if not args.annotations.is_file():
        parser.error(f"annotation file not found: {args.annotations}")
    if "rtagger" in names and (args.images is None or args.checkpoint is None):
        parser.error("--taggers rtagger needs --images DIR (the annotation file's images) and --checkpoint")
    if any(name.startswith("clip") for name in names) and args.images is None:
        parser.error("--taggers clip needs --images DIR (the annotation file's images)")

    started = time.perf_counter()
    images = load_hicodet(args.annotations, args.max_images)
    n_ambiguous = sum(image.ambiguous for image in images)
    print(f"{args.annotations.name}: {len(images)} images ({n_ambiguous} ambiguous), "
          f"{sum(len(i.truth) for i in images)} true triplets")
    if args.twin_stats:
        n_twin, true_twin, n_single, true_single = twin_statistics(images)
        print(f"(verb, object box) slots: {n_twin} with a same-class twin (IoU 0.3-0.7), {true_twin:.0%} of them true; "
              f"{n_single} without, {true_single:.0%} true")
    etas = [float(v) for v in args.eta_sweep.split(",")] if args.eta_sweep else [args.eta]
    variants = [False, True] if args.oracle_number else [False]
    for oracle in variants:
        match = match_rows(images, oracle)
        if oracle:
            print("-- oracle number: the true counts written into the proposals (not a tagger result) --")
        for name in names:
            if oracle and name not in READS_NUMBER:
                continue
            for eta in etas:
                tag: dict[str, Any] = dict(TAGGER_SETTINGS[name])
                if eta is not None:
                    tag["eta"] = eta
                if args.no_caps:
                    tag.update(max_relations_per_image=None, max_relations_per_proposal=None)
                if name.startswith("clip"):
                    tag.update(clip_model=args.clip_model, device=args.device)
                if name == "rtagger":
                    tag.update(checkpoint=str(args.checkpoint), device=args.device)
                predicted = predict(images, tag, image_root=args.images, match=match)
                label = name + ("[oracle-number]" if oracle else "") + (f" η={eta:g}" if args.eta_sweep else "")
                _print(label, *score(images, predicted))
                if args.oracle_ceilings and not oracle:
                    _print(label + "[∩verb-blind]", *score(images, restrict_to_interacting(images, predicted)))
    if args.oracle_ceilings:
        print("-- oracle ceilings: answers built from the ground truth (not tagger results) --")
        for label, verb_blind, twin_blind in (("verb-blind", True, False), ("twin-blind", False, True),
                                              ("verb+twin-blind", True, True)):
            _print(f"oracle[{label}]", *score(images, oracle_predictions(images, verb_blind, twin_blind)))
    print(f"({time.perf_counter() - started:.1f} s)")
    return 0


def _print(label: str, everything: Score, ambiguous: Score) -> None:
    print(f"{label:<32} all {everything.line()}   ambiguous {ambiguous.line()}")


if __name__ == "__main__":
    sys.exit(main())
