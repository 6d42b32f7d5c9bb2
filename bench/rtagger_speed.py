"""R-Tagger inference time per image, with and without encoder reuse.

Builds the full-size R-Tagger (ResNet-50 + RoBERTa-base architecture, random
weights: speed does not depend on the values) or the tiny one, tags real
COCO images from ../shared/data/coco-mini when present (synthetic images
otherwise) with ``--pairs`` candidate pairs each against ``--relations``
relation texts, and reports seconds per image for

* ``reuse``: each image encoded once, all its chunks decoded against it;
* ``re-encode``: the official scheme, the image encoded again for every chunk.

    python -m bench.rtagger_speed --size full --images 3 --pairs 250
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.param_counts import ROBERTA_BASE  # noqa: E402
from model import RLIPv2Config, build_model  # noqa: E402
from model.configuration import CHAR_TOKENIZER  # noqa: E402
from model.preprocess import preprocess_image  # noqa: E402
from model.tagging import RTaggerPredictor, TaggingImage  # noqa: E402

COCO_MINI = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "coco-mini"
RELATIONS = ["on", "next to", "holding", "riding", "sitting on", "looking at", "in front of", "behind", "near",
             "wearing", "eating", "walking with"]


def load_images(count: int, min_size: int, max_size: int) -> list[torch.Tensor]:
    files = sorted((COCO_MINI / "train2017").glob("*.jpg"))[:count] if COCO_MINI.is_dir() else []
    if files:
        from PIL import Image

        return [preprocess_image(Image.open(f).convert("RGB"), min_size, max_size) for f in files]
    g = torch.Generator().manual_seed(0)
    height = min_size
    width = min(max_size, int(min_size * 4 / 3))
    return [torch.randn(3, height, width, generator=g) for _ in range(count)]


def requests(pixels: list[torch.Tensor], pairs: int, relations: int) -> list[TaggingImage]:
    g = torch.Generator().manual_seed(1)
    out = []
    for i, image in enumerate(pixels):
        centres = torch.rand(pairs, 4, generator=g) * 0.6 + 0.2
        sizes = torch.rand(pairs, 2, generator=g) * 0.3 + 0.05
        out.append(TaggingImage(i, image, ["person", "dog", "horse", "cup"], RELATIONS[:relations],
                                torch.cat([centres[:, :2], sizes], 1), torch.cat([centres[:, 2:], sizes], 1),
                                torch.randint(0, 4, (pairs,), generator=g), torch.randint(0, 4, (pairs,), generator=g)))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=("full", "tiny"), default="full")
    parser.add_argument("--images", type=int, default=3)
    parser.add_argument("--pairs", type=int, default=250, help="candidate pairs per image (N_Q = 100 per chunk)")
    parser.add_argument("--relations", type=int, default=10)
    parser.add_argument("--min-size", type=int, default=800)
    parser.add_argument("--max-size", type=int, default=1333)
    parser.add_argument("--images-per-pass", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    if args.size == "full":
        config = RLIPv2Config.rtagger(text_encoder_config=ROBERTA_BASE, tokenizer=CHAR_TOKENIZER)
    else:
        config = RLIPv2Config.tiny("rtagger")
    model = build_model(config).eval().to(args.device)
    batch = requests(load_images(args.images, args.min_size, args.max_size), args.pairs, args.relations)
    shape = tuple(batch[0].pixels.shape)

    results: dict[str, float] = {}
    for label, reuse in (("reuse", True), ("re-encode", False)):
        predictor = RTaggerPredictor(model, images_per_pass=args.images_per_pass, reuse_encoder=reuse,
                                     chunks_per_pass=16 if reuse else 1)
        predictor.predict(batch[:1])  # warm-up: allocator, phrase cache
        runs, cpu_runs = [], []
        for _ in range(args.repeats):
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            start, cpu_start = time.perf_counter(), time.process_time()
            predictor.predict(batch)
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            runs.append((time.perf_counter() - start) / len(batch))
            cpu_runs.append((time.process_time() - cpu_start) / len(batch))
        # Best run: on a shared machine slower runs measure other load. CPU
        # time (all threads of this process) is the contention-proof number.
        results[label] = min(runs)
        results[f"{label} cpu"] = min(cpu_runs)
        print(f"{label:>10}: wall {results[label]:.3f} s/image, cpu {results[label + ' cpu']:.3f} s/image "
              f"(wall runs: {', '.join(f'{r:.3f}' for r in runs)})")
    chunks = -(-args.pairs // config.num_queries)
    print(f"size={args.size} device={args.device} threads={torch.get_num_threads()} image={shape} "
          f"pairs/image={args.pairs} ({chunks} chunks) relations={args.relations} "
          f"speed-up wall x{results['re-encode'] / results['reuse']:.2f}, "
          f"cpu x{results['re-encode cpu'] / results['reuse cpu']:.2f}")
    if args.json:
        args.json.write_text(json.dumps({"args": vars(args) | {"json": None}, "seconds_per_image": results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
