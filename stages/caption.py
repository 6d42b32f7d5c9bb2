"""Stage 1, caption: N_cap captions per image from the configured backend.

Images are opened one batch at a time (``caption.batch_size``), in image-id
order, so a part's memory is bounded by one batch of pixels. Each batch is
seeded from the run seed and its image ids, so captions do not depend on which
worker ran the part. An unreadable image becomes an error row (for every backend, oracle included); an image the
backend has no caption for (oracle) becomes a ``no_captions`` error row. Empty
generated captions are kept: the parse stage turns them into error rows.
"""

from __future__ import annotations

from pipeline.config import RunConfig, canonical_json
from pipeline.contracts import ErrorRow, Row, StageOutput
from pipeline.datasets import image_root
from pipeline.images import BadImage, load_image
from stages.captioners import Captioner, batch_seed, build_captioner

STAGE = "caption"


def run_caption(inputs: dict[str, list[Row]], cfg: RunConfig, captioner: Captioner | None = None) -> StageOutput:
    """Caption one part's images. ``captioner`` overrides the configured backend (tests, benchmarks)."""
    images_in = sorted(inputs.get("ingest", []), key=lambda r: r["image_id"])
    if not images_in:
        return StageOutput()
    captioner = captioner or build_captioner(cfg)
    decoding = canonical_json(captioner.decoding)
    # Every image is opened, even for backends that need no pixels (oracle): an
    # unreadable image must become an error row here, not a broken training sample.
    root = image_root(cfg.dataset)
    out = StageOutput()
    size = cfg.caption.batch_size
    for start in range(0, len(images_in), size):
        batch = images_in[start : start + size]
        ids, images = [], []
        for row in batch:
            try:
                image = load_image(root, row["file_name"])
            except BadImage as exc:
                out.errors.append(ErrorRow(row["image_id"], STAGE, exc.reason, exc.detail))
                continue
            if captioner.needs_pixels:
                images.append(image)
            ids.append(int(row["image_id"]))
        if not ids:
            continue
        captions = captioner.caption(ids, images if captioner.needs_pixels else None, batch_seed(cfg.seed, ids))
        for image_id, texts in zip(ids, captions, strict=True):
            if not texts:
                out.errors.append(
                    ErrorRow(image_id, STAGE, "no_captions", f"{captioner.name} has no caption for image {image_id}")
                )
                continue
            out.rows.extend(
                {
                    "image_id": image_id,
                    "caption_index": index,
                    "caption": text,
                    "captioner": captioner.name,
                    "model_id": captioner.model_id,
                    "decoding": decoding,
                    "seed": cfg.seed,
                }
                for index, text in enumerate(texts)
            )
    out.rows.sort(key=lambda r: (r["image_id"], r["caption_index"]))
    out.errors.sort(key=lambda e: (e.image_id, e.reason))
    return out

