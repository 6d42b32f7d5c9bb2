"""The dataset card: ``<run>/README.md`` in Hugging Face card conventions, so a shard set describes itself.

The YAML front matter is what the Hub reads (``annotations_creators``,
``source_datasets``, ``size_categories``, ``configs`` with ``data_files`` pointing
at the committed shard files, ...); the body records how the labels were made:
captioner model and decoding parameters, parser, tagger and checkpoint, η, the
counts and the manifest's hash. Written after every run, so it always matches
the shards next to it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import yaml

from storage.atomic import atomic_write
from storage.run_reader import RunReader

# The Hub's size buckets (number of examples = images with a shard row).
_SIZE_BUCKETS = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
                 (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B"))

# What each dataset kind is extended from, and the licence of its annotations.
_SOURCES = {"coco": ("extended|coco", "cc-by-4.0"), "objects365": ("extended|objects365", "cc-by-4.0"),
            "coco-format": ("extended|other", "unknown"), "demo": ("original", "unknown")}


def size_category(n: int) -> str:
    return next((label for bound, label in _SIZE_BUCKETS if n < bound), "n>1B")


def card_metadata(reader: RunReader, shard_files: list[str], split: str, images: int) -> dict[str, Any]:
    config = reader.manifest.get("config") or {}
    kind = (config.get("dataset") or {}).get("kind", "coco-format")
    source, licence = _SOURCES.get(kind, ("extended|other", "unknown"))
    captioner = (config.get("caption") or {}).get("backend")
    return {
        "pretty_name": f"relfactory pseudo-labels: {reader.name}",
        "annotations_creators": ["machine-generated"],
        # Relation texts come from the captions: human ones for the oracle captioner, a model's otherwise.
        "language_creators": ["crowdsourced" if captioner == "oracle" else "machine-generated"],
        "language": ["en"],
        "multilinguality": ["monolingual"],
        "license": licence,
        "size_categories": [size_category(images)],
        "source_datasets": [source],
        "task_categories": ["object-detection"],
        "tags": ["visual-relationship-detection", "scene-graph", "human-object-interaction", "pseudo-labels",
                 "rlipv2", "relfactory"],
        "configs": [{"config_name": "default", "data_files": [{"split": split, "path": shard_files}]}],
    }


def _manifest_hash(run_dir: Path) -> str:
    try:
        return hashlib.sha256((run_dir / "manifest.json").read_bytes()).hexdigest()
    except OSError:
        return "none"


def _caption_settings(reader: RunReader) -> dict[str, Any]:
    for row in reader.rows("caption", columns=["captioner", "model_id", "decoding", "seed"]):
        return {"captioner": row["captioner"], "model": row["model_id"], "decoding": json.loads(row["decoding"] or "{}"),
                "seed": row["seed"]}
    return {}


def card_text(run_dir: Path) -> str:
    reader = RunReader(run_dir)
    shard_files = [str(path.relative_to(run_dir)) for _, path in reader.part_files("shard")]
    manifest = reader.manifest
    config = manifest.get("config") or {}
    images = boxes = relations = 0
    data_splits: set[str] = set()
    # One pass: shards can be large.
    for row in reader.rows("shard", columns=["objects", "relationships", "data_split"]):
        images += 1
        boxes += len(row["objects"] or [])
        relations += len(row["relationships"] or [])
        data_splits.add(row["data_split"] or "")
    # The rows' own data_split (val2017 for instances_val2017.json), not a generic "train".
    split = _split_name(data_splits.pop() if len(data_splits) == 1 else "train")
    meta = card_metadata(reader, shard_files, split, images)
    stages = manifest.get("stages") or {}
    caption, tag = _caption_settings(reader), config.get("tag") or {}
    models = manifest.get("models") or {}
    provenance = {
        "captioner": caption.get("captioner", (config.get("caption") or {}).get("backend")),
        # An oracle run's "model" is the human captions file: no captioning model was involved.
        "caption_model": caption.get("model") if caption.get("captioner") != "oracle" else None,
        **({"captions_file": caption.get("model")} if caption.get("captioner") == "oracle" else {}),
        "decoding": caption.get("decoding"),
        "caption_seed": caption.get("seed"),
        "captions_per_image": (config.get("caption") or {}).get("n_captions"),
        "parser": (config.get("parse") or {}).get("parser"),
        "tagger": tag.get("tagger"),
        "tagger_checkpoint": models.get("tag_checkpoint"),
        "eta": tag.get("eta"),
        "config_hash": manifest.get("config_hash"),
        "manifest_sha256": _manifest_hash(run_dir),
    }
    meta["relfactory"] = provenance
    errors = {s: info.get("errors", 0) for s, info in stages.items() if info.get("errors")}
    body = [
        f"# {meta['pretty_name']}",
        "",
        "Machine-made ⟨subject, relation, object⟩ labels on an object-detection dataset, made by "
        "relfactory with the RLIPv2 recipe: captions → scene-graph parse → "
        "synonym match to the annotated boxes → relation tagging with a confidence threshold η.",
        "",
        "## How the labels were made",
        "",
        "| setting | value |",
        "|---|---|",
        *(f"| {key.replace('_', ' ')} | `{json.dumps(value) if isinstance(value, dict) else value}` |"
          for key, value in provenance.items()),
        "",
        "## Counts",
        "",
        f"- images (shard rows): {images}",
        f"- boxes: {boxes}",
        f"- relations (confidence > η = {tag.get('eta')}): {relations}",
        f"- images that failed a stage: {json.dumps(errors) if errors else 'none'}",
        "",
        "## Files and schema",
        "",
        f"The `default` config's `{split}` split is the zstd Parquet files under `shard/`, one row per image: "
        "`image_id, dataset, data_split, file_name, width, height, objects[object_id, category_id, names, x, y, w, h], "
        "relationships[relationship_id, subject_id, object_id, predicate, confidence, caption_indices]` "
        "(boxes are COCO-style x, y, w, h in pixels). The photos are not included: `file_name` is relative to the "
        "source dataset's image folder.",
        "",
        "```python",
        "import datasets",
        f"ds = datasets.load_dataset(\"parquet\", data_files={{\"{split}\": \"shard/part-*.parquet\"}})",
        "```",
        "",
        "## License",
        "",
        f"`{meta['license']}` is the licence of the source annotations the boxes come from; the images keep their "
        "own licences (for COCO, each image's Flickr licence).",
        "",
    ]
    return "---\n" + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True) + "---\n\n" + "\n".join(body)


def _split_name(split: str) -> str:
    """The Hub accepts split names of word characters and dots only."""
    cleaned = "".join(c if c.isalnum() or c in "_." else "_" for c in split).strip("._")
    return cleaned or "train"


def write_card(run_dir: Path, fsync: bool = True) -> Path | None:
    """Write ``<run>/README.md``; None (nothing written) while the run has no committed shard part."""
    run_dir = Path(run_dir)
    if not RunReader(run_dir).part_files("shard"):
        return None
    text = card_text(run_dir)
    dest = run_dir / "README.md"
    # A writer killed mid-write leaves its temp file; callers hold the run lock, so clear it.
    for stale in run_dir.glob(".README.md.*.tmp"):
        stale.unlink(missing_ok=True)
    atomic_write(dest, lambda tmp: tmp.write_text(text, encoding="utf-8"), fsync=fsync)
    return dest
