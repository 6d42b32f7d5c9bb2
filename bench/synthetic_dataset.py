"""A synthetic dataset in Objects365's layout, for scale tests that the real 1.7 M images cannot serve.

    .venv/bin/python bench/synthetic_dataset.py /tmp/o365-10k --images 10000 [--boxes-per-image 15] [--seed 0]

Writes, under the destination folder (keep it outside the repository, e.g. under /tmp)::

    zhiyuan_objv2_train.json   images / annotations / categories as Objects365 v2 ships them
                               (file_name "images/v1/patchN/objects365_v1_XXXXXXXX.jpg", 365 categories)
    images/patchN/...jpg       hard links to a few shared JPEGs, so a million images cost a few MB of
                               pixels (plus one directory entry each)
    captions.json              oracle captions, COCO captions format, N_cap per image

Captions come from a caption bank so that parse, match and tag do real work: the
FACTUAL Visual Genome region captions (``--caption-bank factual.csv``; by default
``../shared/data/factual/train.csv`` when present) keeping those whose gold triplet
names two Objects365 classes, else a small bank written here. Each image gets
boxes for the classes its captions name plus random classes up to a Poisson(15)
box count, which is Objects365's average. Everything is seeded per block of 4,096 image ids.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import re
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT_BANK = ROOT.parent / "shared" / "data" / "factual" / "train.csv"
IMAGES_PER_PATCH = 34_000  # Objects365 v2 has 51 patches of ~34 k train images
LINKS_PER_PIXEL_FILE = 50_000  # below ext4's 65,000 hard links per inode
WIDTH, HEIGHT = 640, 480

# Used when no FACTUAL file is at hand: (subject, predicate, object) over Objects365 class words.
BUILT_IN_TRIPLETS = (
    ("man", "riding", "horse"), ("woman", "holding", "umbrella"), ("dog", "on", "couch"),
    ("cat", "sitting on", "chair"), ("person", "next to", "car"), ("boy", "kicking", "ball"),
    ("girl", "holding", "cup"), ("man", "sitting on", "bench"), ("woman", "carrying", "handbag"),
    ("bottle", "on", "table"), ("laptop", "on", "desk"), ("bird", "on", "boat"),
    ("person", "wearing", "hat"), ("man", "wearing", "glasses"), ("clock", "above", "door"),
    ("cup", "next to", "bowl"), ("truck", "behind", "car"), ("child", "eating", "cake"),
    ("lamp", "beside", "bed"), ("man", "playing", "guitar"), ("horse", "pulling", "carriage"),
    ("woman", "walking", "dog"), ("pillow", "on", "bed"), ("book", "on", "shelf"),
)
BUILT_IN_TEMPLATES = ("a {s} {p} a {o}", "the {s} is {p} the {o}", "a {s} {p} a {o} in the picture",
                      "there is a {s} {p} a {o}")


class CaptionBank:
    """Captions, each with the Objects365 category ids its triplets name (subject and object)."""

    def __init__(self, captions: list[str], classes: list[tuple[int, ...]], source: str) -> None:
        if not captions:
            raise ValueError(f"caption bank {source} holds no caption naming two Objects365 classes")
        self.captions = captions
        self.classes = classes
        self.source = source

    def __len__(self) -> int:
        return len(self.captions)


def objects365_categories() -> list[dict]:
    from stages.vocab.tables import load_table

    return [{"id": i, "name": name, "supercategory": "object"}
            for i, name in enumerate(load_table("objects365"), start=1)]


def _matcher():
    from stages.vocab.matcher import EntityMatcher
    from stages.vocab.tables import load_table

    return EntityMatcher([load_table("objects365")])


def load_bank(path: Path | None, max_captions: int = 20_000) -> CaptionBank:
    """The FACTUAL bank when the file exists (first ``max_captions`` usable rows), else the built-in one."""
    matcher = _matcher()
    ids = {_key(c["name"]): c["id"] for c in objects365_categories()}
    captions, classes = [], []
    if path is not None and path.is_file():
        with path.open(newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                named = _triplet_classes(row.get("scene_graph") or "", matcher, ids)
                if named:
                    captions.append(row["caption"].strip())
                    classes.append(named)
                    if len(captions) >= max_captions:
                        break
        return CaptionBank(captions, classes, path.name)
    for s, p, o in BUILT_IN_TRIPLETS:
        named = tuple(sorted({ids[k] for k in (matcher.match(s, s), matcher.match(o, o)) if k in ids}))
        for template in BUILT_IN_TEMPLATES:
            captions.append(template.format(s=s, p=p, o=o))
            classes.append(named)
    return CaptionBank(captions, classes, "built-in")


def _key(name: str) -> str:
    from stages.vocab.text import class_key

    return class_key(name)


_TRIPLET = re.compile(r"\(\s*([^,()]+?)\s*,\s*([^,()]+?)\s*,\s*([^,()]+?)\s*\)")


def _triplet_classes(scene_graph: str, matcher, ids: dict[str, int]) -> tuple[int, ...]:
    """Category ids of subjects and objects of the triplets whose both ends are Objects365 classes."""
    named: set[int] = set()
    for subject, predicate, obj in _TRIPLET.findall(scene_graph):
        if predicate in {"is", "are", "has attribute"}:
            continue  # attribute triplets ("stove is white") name no second entity
        s, o = matcher.match(subject, subject.split()[-1]), matcher.match(obj, obj.split()[-1])
        if s in ids and o in ids:
            named.update((ids[s], ids[o]))
    return tuple(sorted(named))


def file_name(image_id: int) -> str:
    """Objects365's own naming: patch folders of ~34 k images, v1 file names listed under images/v1/."""
    return f"images/v1/patch{(image_id - 1) // IMAGES_PER_PATCH}/objects365_v1_{image_id:08d}.jpg"


BLOCK = 4096  # images drawn per generator call: one seeded generator per image would dominate at 1 M


def block_boxes(first_id: int, count: int, bank: CaptionBank, n_cap: int, boxes_per_image: float,
                n_categories: int, seed: int) -> list[tuple[list[int], list[int], list[list[float]]]]:
    """(caption indices, category per box, xywh per box) of images ``first_id .. first_id + count - 1``.

    Seeded by the block's first image id, so a dataset's image N is the same whatever N images are asked for.
    """
    rng = np.random.default_rng((seed, first_id))
    picks = rng.integers(0, len(bank), size=(count, n_cap))
    drawn = np.maximum(rng.poisson(boxes_per_image, size=count), 1)
    named = [sorted({c for i in row for c in bank.classes[i]}) for row in picks.tolist()]
    n_boxes = np.maximum(drawn, [len(n) for n in named])
    total = int(n_boxes.sum())
    fillers = rng.integers(1, n_categories + 1, size=total).tolist()
    w = rng.uniform(16, WIDTH / 2, size=total)
    h = rng.uniform(16, HEIGHT / 2, size=total)
    x = rng.uniform(0, 1, size=total) * (WIDTH - w)
    y = rng.uniform(0, 1, size=total) * (HEIGHT - h)
    xywh = np.round(np.stack([x, y, w, h], axis=1), 2).tolist()
    out, start = [], 0
    for row, names, n in zip(picks.tolist(), named, n_boxes.tolist()):
        categories = names + fillers[start + len(names) : start + n]
        out.append((row, categories, xywh[start : start + n]))
        start += n
    return out


def _pixel_files(folder: Path, count: int) -> list[Path]:
    """``count`` distinct small JPEGs of the annotated size, the targets of every image's hard link."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for index in range(count):
        path = folder / f"pixels-{index:03d}.jpg"
        if not path.exists():
            shade = (37 * index % 256, 91 * index % 256, 53 * index % 256)
            Image.new("RGB", (WIDTH, HEIGHT), shade).save(path, quality=60)
        files.append(path)
    return files


def generate(dest: Path, n_images: int, *, boxes_per_image: float = 15.0, n_cap: int = 5,
             bank_path: Path | None = DEFAULT_BANK, seed: int = 0) -> dict:
    """Write the dataset under ``dest``; returns its summary (also written to ``dest/SUMMARY.json``)."""
    started = time.perf_counter()
    dest = Path(dest)
    images_root = dest / "images"
    images_root.mkdir(parents=True, exist_ok=True)
    bank = load_bank(bank_path)
    categories = objects365_categories()
    pixels = _pixel_files(dest / "_pixels", max(4, math.ceil(n_images / LINKS_PER_PIXEL_FILE)))
    annotations_path = dest / "zhiyuan_objv2_train.json"
    captions_path = dest / "captions.json"
    n_boxes = n_captions = 0
    tmp_ann, tmp_cap = annotations_path.with_suffix(".tmp"), captions_path.with_suffix(".tmp")
    # Written by hand, image by image: a million images' annotations as Python objects would not fit.
    with tmp_ann.open("w") as ann, tmp_cap.open("w") as cap:
        ann.write('{"images": [')
        for image_id in range(1, n_images + 1):
            name = file_name(image_id)
            ann.write(("" if image_id == 1 else ",") + json.dumps(
                {"height": HEIGHT, "id": image_id, "license": 5, "width": WIDTH, "file_name": name,
                 "url": ""}))
            _link(pixels[image_id % len(pixels)], images_root / name.split("/", 2)[2])
        ann.write('], "annotations": [')
        cap.write('{"annotations": [')
        for first in range(1, n_images + 1, BLOCK):
            block = block_boxes(first, min(BLOCK, n_images + 1 - first), bank, n_cap, boxes_per_image,
                                len(categories), seed)
            for image_id, (picks, cats, xywh) in enumerate(block, start=first):
                chunk = []
                for category, (x, y, w, h) in zip(cats, xywh):
                    n_boxes += 1
                    chunk.append(f'{{"id": {n_boxes}, "iscrowd": 0, "isfake": 0, "isreflected": 0, '
                                 f'"bbox": [{x}, {y}, {w}, {h}], "area": {round(w * h, 2)}, '
                                 f'"image_id": {image_id}, "category_id": {category}}}')
                ann.write(("" if n_boxes == len(chunk) else ",") + ",".join(chunk))
                captions = []
                for pick in picks:
                    n_captions += 1
                    captions.append(json.dumps({"id": n_captions, "image_id": image_id,
                                                "caption": bank.captions[pick]}))
                cap.write(("" if n_captions == len(captions) else ",") + ",".join(captions))
        ann.write('], "categories": ' + json.dumps(categories) + ', "licenses": []}')
        cap.write("]}")
    os.replace(tmp_ann, annotations_path)
    os.replace(tmp_cap, captions_path)
    summary = {"images": n_images, "boxes": n_boxes, "boxes_per_image": round(n_boxes / max(n_images, 1), 2),
               "captions": n_captions, "caption_bank": bank.source, "caption_bank_size": len(bank),
               "pixel_files": len(pixels), "annotations": str(annotations_path), "captions_file": str(captions_path),
               "images_root": str(images_root), "annotations_mb": round(annotations_path.stat().st_size / 2**20, 1),
               "seconds": round(time.perf_counter() - started, 1)}
    (dest / "SUMMARY.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _link(target: Path, path: Path) -> None:
    path.parent.mkdir(exist_ok=True)
    try:
        os.link(target, path)
    except FileExistsError:
        pass  # a re-generation into the same folder keeps the links it made before


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dest", type=Path, help="output folder (outside the repository, e.g. /tmp/o365-10k)")
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--boxes-per-image", type=float, default=15.0, help="mean of the Poisson box count")
    parser.add_argument("--n-cap", type=int, default=5, help="oracle captions per image")
    parser.add_argument("--caption-bank", type=Path, default=DEFAULT_BANK,
                        help="FACTUAL-style CSV (caption, scene_graph); the built-in bank when absent")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if ROOT in args.dest.resolve().parents:
        parser.error("write generated data outside the repository (e.g. under /tmp)")
    print(json.dumps(generate(args.dest, args.images, boxes_per_image=args.boxes_per_image, n_cap=args.n_cap,
                              bank_path=args.caption_bank, seed=args.seed), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
