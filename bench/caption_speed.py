"""Throughput of the caption stage on coco-mini, against a bare generate() loop.

The stage adds safe image loading, per-batch seeding, prompt stripping and row
building around ``model.generate``; this measures what that costs. Both sides
caption the same images with the same model, batch size and decoding
parameters, so ``stage/bare`` near 1.0 means the stage adds little.

    .venv/bin/python bench/caption_speed.py                       # tiny random BLIP + oracle
    .venv/bin/python bench/caption_speed.py --model-id DIR_OR_ID  # a real BLIP, when its weights are local

Needs ../shared/data/coco-mini (80 COCO images with their captions).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from PIL import Image  # noqa: E402

from pipeline.config import CaptionConfig, DatasetConfig, RunConfig  # noqa: E402
from pipeline.datasets import read_dataset  # noqa: E402
from stages.caption import run_caption  # noqa: E402
from stages.captioners import BlipCaptioner, OracleCaptioner  # noqa: E402
from stages.captioners.base import resolve_device  # noqa: E402
from stages.captioners.blip import generate_kwargs, load_blip  # noqa: E402
from stages.captioners.tiny import build_tiny_blip  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "coco-mini"


def bare_generate_loop(model: Any, processor: Any, paths: list[Path], cfg: CaptionConfig) -> list[str]:
    """What one would write by hand: open, preprocess, generate, decode."""
    kwargs = generate_kwargs(cfg)
    device, dtype = next(model.parameters()).device, next(model.parameters()).dtype
    texts: list[str] = []
    for start in range(0, len(paths), cfg.batch_size):
        images = [Image.open(p).convert("RGB") for p in paths[start : start + cfg.batch_size]]
        inputs = processor(images=images, text=[cfg.prompt] * len(images), return_tensors="pt")
        with torch.inference_mode():
            out = model.generate(
                pixel_values=inputs.pixel_values.to(device, dtype), input_ids=inputs.input_ids.to(device), **kwargs
            )
        texts.extend(processor.batch_decode(out, skip_special_tokens=True))
    return texts


def timed(fn, repeats: int) -> tuple[float, Any]:
    """Best wall time of ``repeats`` runs (the least disturbed by other load)."""
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--model-id", default=None, help="real BLIP id or directory (default: tiny random BLIP)")
    parser.add_argument("--image-size", type=int, default=384, help="tiny BLIP input size (BLIP's is 384)")
    parser.add_argument("--n-captions", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-images", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()

    if not (args.data / "train2017").is_dir():
        sys.exit(f"coco-mini not found at {args.data} (expects train2017/ and annotations/)")
    dataset = DatasetConfig(
        kind="coco-format",
        annotations=args.data / "annotations" / "instances_train2017.json",
        images=args.data / "train2017",
        max_images=args.max_images,
    )
    ingest = read_dataset(dataset).rows
    caption = CaptionConfig(n_captions=args.n_captions, batch_size=args.batch_size, device=args.device)
    cfg = RunConfig(seed=0, dataset=dataset, caption=caption)
    paths = [Path(dataset.images) / r["file_name"] for r in ingest]
    n = len(ingest)

    if args.model_id:
        cfg.caption.model_id = args.model_id
        device = resolve_device(args.device)
        model, processor = load_blip(args.model_id, device, caption.fp16_on_gpu and device.startswith("cuda"))
        captioner = BlipCaptioner(model, processor, cfg.caption)
        model_name = args.model_id
    else:
        # Full-size (384 px) preprocessing as with real BLIP, but a 12x12 patch grid
        # (BLIP-large: 24x24) so the random model's own compute stays small.
        model, processor = build_tiny_blip(image_size=args.image_size, patch_size=max(8, args.image_size // 12))
        captioner = BlipCaptioner(model, processor, cfg.caption, model_id="tiny-random-blip")
        model_name = f"tiny random BLIP ({sum(p.numel() for p in model.parameters())} params, {args.image_size}px)"

    # Warm-up: first-call costs (kernel selection, lazy imports) are not throughput.
    run_caption({"ingest": ingest[: args.batch_size]}, cfg, captioner=captioner)
    bare_generate_loop(model, processor, paths[: args.batch_size], cfg.caption)

    stage_s, stage_out = timed(lambda: run_caption({"ingest": ingest}, cfg, captioner=captioner), args.repeats)
    bare_s, _ = timed(lambda: bare_generate_loop(model, processor, paths, cfg.caption), args.repeats)

    captions_file = args.data / "annotations" / "captions_train2017.json"
    oracle_cfg = cfg.model_copy(deep=True)
    oracle_cfg.caption.backend = "oracle"
    oracle_cfg.caption.captions_file = captions_file
    start = time.perf_counter()
    oracle = OracleCaptioner.from_file(captions_file, args.n_captions)  # cold: parses the JSON
    oracle_load_s = time.perf_counter() - start
    oracle_s, oracle_out = timed(lambda: run_caption({"ingest": ingest}, oracle_cfg, captioner=oracle), args.repeats)

    figures = {
        "images": n,
        "model": model_name,
        "device": str(next(model.parameters()).device),
        "torch_threads": torch.get_num_threads(),
        "n_captions": args.n_captions,
        "batch_size": args.batch_size,
        "stage_images_per_s": round(n / stage_s, 2),
        "bare_generate_images_per_s": round(n / bare_s, 2),
        "stage_over_bare_time": round(stage_s / bare_s, 3),
        "stage_rows": len(stage_out.rows),
        "stage_errors": len(stage_out.errors),
        "oracle_images_per_s": round(n / oracle_s, 1),
        "oracle_index_load_s": round(oracle_load_s, 4),
        "oracle_rows": len(oracle_out.rows),
    }
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    width = max(map(len, figures))
    for key, value in figures.items():
        print(f"{key:<{width}}  {value}")


if __name__ == "__main__":
    main()
