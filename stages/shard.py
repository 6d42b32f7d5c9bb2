"""Stage 5, shard: the final relational rows, one per image.

An image reaches the shards when it was captioned (a caption row exists) and no
later stage failed on it as a whole (a part that exhausted its retries, a tagger
that could not read the image); such images are in that stage's error table
instead, so every input image is accounted for. Per-caption errors (an empty
caption) do not remove an image. Images with boxes but no tagged relation
are kept with an empty relationship list: they still carry detection labels.
Relationship ids are ``image_id * 10_000 + rank`` — stable across re-runs and
unique in the run — and are renumbered by the RLIPv2 JSON exporter.
"""

from __future__ import annotations

from pipeline.config import RunConfig
from pipeline.contracts import Row, StageOutput

MAX_RELATIONS_PER_IMAGE = 10_000
# Error reasons of parse/match that concern a whole image, not one caption.
IMAGE_LEVEL_REASONS = frozenset({"stage_failed", "unknown_image"})


def failed_images(inputs: dict[str, list[Row]]) -> set[int]:
    failed = set()
    for stage in ("parse", "match", "tag"):
        for error in inputs.get(f"{stage}.errors", []):
            if stage == "tag" or error["reason"] in IMAGE_LEVEL_REASONS:
                failed.add(error["image_id"])
    return failed


def run_shard(inputs: dict[str, list[Row]], cfg: RunConfig) -> StageOutput:
    captioned = {row["image_id"] for row in inputs["caption"]} - failed_images(inputs)
    tagged = {row["image_id"]: row for row in inputs["tag"]}
    rows = []
    for image in sorted(inputs["ingest"], key=lambda r: r["image_id"]):
        image_id = image["image_id"]
        if image_id not in captioned:
            continue
        relationships = tagged.get(image_id, {}).get("relationships") or []
        rows.append({
            "image_id": image_id,
            "dataset": image["dataset"],
            "data_split": image["data_split"],
            "file_name": image["file_name"],
            "width": image["width"],
            "height": image["height"],
            "objects": [
                {"object_id": o["object_id"], "category_id": o["category_id"], "names": o["category"],
                 "x": o["x"], "y": o["y"], "w": o["w"], "h": o["h"]}
                for o in image["objects"]
            ],
            "relationships": [
                {"relationship_id": image_id * MAX_RELATIONS_PER_IMAGE + rank,
                 "subject_id": r["subject_id"], "object_id": r["object_id"], "predicate": r["predicate"],
                 "confidence": r["confidence"], "caption_indices": list(r["caption_indices"] or [])}
                for rank, r in enumerate(relationships[:MAX_RELATIONS_PER_IMAGE])
            ],
        })
    return StageOutput(rows=rows)
