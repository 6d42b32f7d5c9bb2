"""Stage functions without models, for measuring orchestration at sizes the real stages cannot reach here.

Each reads its part's inputs (the runner does that), and returns rows of its
stage's schema in the real volume (N_cap caption and parse rows per image, one
match/tag/shard row per image), so reading, writing, committing and planning cost
what they cost in a real run; only the captioner, spaCy and the tagger are skipped.
``nothing`` commits empty parts: orchestration and planning alone (``NOOP_STAGES``).
Selected with ``RELFACTORY_STAGE_FUNCTIONS`` (see ``DRY_STAGES``), which also
changes the stage keys, so dry output is never taken for real output.
"""

from __future__ import annotations

from pipeline.config import RunConfig
from pipeline.contracts import Row, StageOutput

DRY_STAGES = ";".join(f"{stage}=bench.dry_stages:{stage}" for stage in ("caption", "parse", "match", "tag", "shard"))
# Orchestration only: every stage reads its inputs and commits an empty part.
NOOP_STAGES = ";".join(f"{stage}=bench.dry_stages:nothing" for stage in ("caption", "parse", "match", "tag", "shard"))


def caption(inputs: dict[str, list[Row]], cfg: RunConfig) -> StageOutput:
    rows = [{"image_id": image["image_id"], "caption_index": index,
             "caption": f"a {_first_category(image)} next to something", "captioner": "dry", "model_id": None,
             "decoding": "{}", "seed": cfg.seed}
            for image in inputs["ingest"] for index in range(cfg.caption.n_captions)]
    return StageOutput(rows=rows)


def parse(inputs: dict[str, list[Row]], cfg: RunConfig) -> StageOutput:
    rows = [{"image_id": row["image_id"], "caption_index": row["caption_index"], "caption": row["caption"],
             "parser": "dry", "triplets": []} for row in inputs["caption"]]
    return StageOutput(rows=rows)


def match(inputs: dict[str, list[Row]], cfg: RunConfig) -> StageOutput:
    images = sorted({row["image_id"] for row in inputs["parse"]})
    return StageOutput(rows=[{"image_id": image_id, "chunk_index": 0, "relation_texts": [], "relation_captions": [],
                              "pairs": [], "class_proposals": []} for image_id in images])


def tag(inputs: dict[str, list[Row]], cfg: RunConfig) -> StageOutput:
    return StageOutput(rows=[{"image_id": row["image_id"], "tagger": "dry", "eta": cfg.tag.eta, "n_pairs": 0,
                              "relationships": [], "class_proposals": []} for row in inputs["match"]])


def shard(inputs: dict[str, list[Row]], cfg: RunConfig) -> StageOutput:
    from stages.shard import run_shard

    return run_shard(inputs, cfg)  # no model: the real shard stage, so the shard rows are the real layout


def nothing(inputs: dict[str, list[Row]], cfg: RunConfig) -> StageOutput:
    return StageOutput()


def _first_category(image: Row) -> str:
    objects = image.get("objects") or []
    return objects[0]["category"] if objects else "thing"
