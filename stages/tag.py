"""Stage 4, tag: score candidate pairs with a tagger and keep confident relations.

The tagger (layout rules, greedy baselines, the R-Tagger ...) only scores; this
stage owns the rest so every backend gets identical semantics: it feeds the
tagger a few images at a time (all chunks of an image together), keeps scores
strictly above η, keeps the best score per (subject, object, predicate), caps
the relations per proposal and per image (most confident first, so one crowded
photo cannot flood a shard), attaches the captions that back each relation and
the proposal it answers, and writes one TAG row per image that had candidate
pairs, with per-proposal counts (candidates, tagged, capped).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from pipeline.config import RunConfig, TagConfig
from pipeline.contracts import ErrorRow, Row, StageError, StageOutput
from stages.taggers import ScoredRelation, Tagger, TaggerResult, build_tagger
from stages.taggers.proposals import ProposalKey, image_proposals, proposal_key

STAGE = "tag"

RelationKey = tuple[int, int, str]  # (subject_id, object_id, predicate)


def run_tag(inputs: dict[str, list[Row]], cfg: RunConfig, image_root: Path | None = None) -> StageOutput:
    """TAG rows for the images of ``inputs["match"]``; ``image_root`` overrides the dataset's."""
    images = {row["image_id"]: row for row in inputs["ingest"]}
    chunks_by_image: dict[int, list[Row]] = defaultdict(list)
    for chunk in inputs["match"]:
        chunks_by_image[chunk["image_id"]].append(chunk)

    out = StageOutput()
    known: list[int] = []
    for image_id in sorted(chunks_by_image):
        if image_id in images:
            known.append(image_id)
        else:
            out.errors.append(ErrorRow(image_id, STAGE, "unknown_image", "match rows for an image not in ingest"))
    if not known:
        return out

    tagger = build_tagger(cfg.tag)
    root = image_root if image_root is not None else _image_root(cfg, tagger)
    size = cfg.tag.batch_size
    for start in range(0, len(known), size):
        batch = known[start : start + size]
        chunks = [c for image_id in batch for c in sorted(chunks_by_image[image_id], key=lambda c: c["chunk_index"])]
        result = tagger.tag(chunks, {image_id: images[image_id] for image_id in batch}, root)
        out.extend(_tag_rows(batch, chunks_by_image, result, tagger.name, cfg.tag))
    return out


def _image_root(cfg: RunConfig, tagger: Tagger) -> Path:
    if not tagger.needs_pixels:
        # Never read; avoids touching the dataset layout for pixel-free taggers.
        return Path(cfg.dataset.images) if cfg.dataset.images is not None else Path(".")
    from pipeline.datasets import image_root

    return image_root(cfg.dataset)


def _tag_rows(
    batch: list[int], chunks_by_image: dict[int, list[Row]], result: TaggerResult, tagger: str, tag_cfg: TagConfig
) -> StageOutput:
    eta = tag_cfg.eta
    out = StageOutput(errors=list(result.errors))
    failed = {error.image_id for error in result.errors}
    scores_by_image: dict[int, list[ScoredRelation]] = defaultdict(list)
    for score in result.scores:
        if score.image_id not in batch:
            raise StageError(f"tagger {tagger!r} scored image {score.image_id}, which was not in its batch")
        scores_by_image[score.image_id].append(score)

    for image_id in batch:
        if image_id in failed:
            continue
        chunks = chunks_by_image[image_id]
        proposed = _proposals(chunks)
        texts = {text for chunk in chunks for text in chunk["relation_texts"]}
        best: dict[RelationKey, float] = {}
        for score in scores_by_image.get(image_id, ()):
            pair = (score.subject_id, score.object_id)
            if pair not in proposed:
                raise StageError(f"tagger {tagger!r} scored pair {pair} of image {image_id}, not a candidate pair")
            if score.predicate not in texts:
                raise StageError(f"tagger {tagger!r} used predicate {score.predicate!r} not in image {image_id}'s T")
            if not score.confidence > eta:
                continue
            key = (score.subject_id, score.object_id, score.predicate)
            best[key] = max(best.get(key, score.confidence), score.confidence)
        relationships = _relationships(best, proposed, _mentions(chunks))
        kept, proposal_rows = _cap_and_attribute(relationships, chunks, tag_cfg)
        out.rows.append({
            "image_id": image_id,
            "tagger": tagger,
            "eta": float(eta),
            "n_pairs": len(proposed),
            "relationships": kept,
            "class_proposals": proposal_rows,
        })
    return out


def _cap_and_attribute(relationships: list[Row], chunks: list[Row], tag_cfg: TagConfig) -> tuple[list[Row], list[Row]]:
    """The relations the caps keep (still most confident first), each with its proposal's index, and one
    row per proposal counting its candidates, kept relations and capped ones.

    A relation belongs to the proposal of its (predicate, subject class, object
    class); one the tagger moved to a class pair no caption proposed it for has
    no proposal but is capped in a group of its own the same way.
    """
    proposals = image_proposals(chunks)
    index = {proposal.key: i for i, proposal in enumerate(proposals)}
    categories = {(pair["subject_id"], pair["object_id"]): (pair["subject_category"], pair["object_category"])
                  for chunk in chunks for pair in chunk["pairs"]}
    group_of: list[ProposalKey] = [
        proposal_key(r["predicate"], *categories[(r["subject_id"], r["object_id"])]) for r in relationships
    ]
    in_group: dict[ProposalKey, int] = defaultdict(int)
    capped: dict[ProposalKey, int] = defaultdict(int)
    kept: list[Row] = []
    per_proposal = tag_cfg.max_relations_per_proposal
    per_image = tag_cfg.max_relations_per_image
    for relation, group in zip(relationships, group_of):  # most confident first
        if (per_proposal is not None and in_group[group] >= per_proposal) or (
                per_image is not None and len(kept) >= per_image):
            capped[group] += 1
            continue
        in_group[group] += 1
        kept.append({**relation, "proposal_index": index.get(group)})
    rows = [
        {"relation": p.relation, "subject_category": p.subject_category, "object_category": p.object_category,
         "n_candidates": len(set(p.pairs)), "n_tagged": in_group.get(p.key, 0), "n_capped": capped.get(p.key, 0)}
        for p in proposals
    ]
    return kept, rows


def _proposals(chunks: list[Row]) -> dict[tuple[int, int], dict[str, list[int]]]:
    """Candidate pair -> relation -> caption indices that proposed it for that pair."""
    proposed: dict[tuple[int, int], dict[str, list[int]]] = {}
    for chunk in chunks:
        for pair in chunk["pairs"]:
            slot = proposed.setdefault((pair["subject_id"], pair["object_id"]), {})
            for proposal in pair["proposals"]:
                merged = set(slot.get(proposal["relation"], [])) | set(proposal["caption_indices"])
                slot[proposal["relation"]] = sorted(merged)
    return proposed


def _mentions(chunks: list[Row]) -> dict[str, set[int]]:
    """Relation text -> every caption of the image that mentions it."""
    mentions: dict[str, set[int]] = defaultdict(set)
    for chunk in chunks:
        for entry in chunk.get("relation_captions") or []:
            mentions[entry["relation"]].update(entry["caption_indices"])
        for pair in chunk["pairs"]:
            for proposal in pair["proposals"]:
                mentions[proposal["relation"]].update(proposal["caption_indices"])
    return mentions


def _relationships(best: dict[RelationKey, float], proposed: dict[tuple[int, int], dict[str, list[int]]],
                   mentions: dict[str, set[int]]) -> list[Row]:
    # A relation the tagger moved to a pair no caption proposed it for is still
    # backed by the captions that mention it somewhere in the image.
    rows = [
        {
            "subject_id": subject_id,
            "object_id": object_id,
            "predicate": predicate,
            "confidence": float(confidence),
            "caption_indices": proposed[(subject_id, object_id)].get(predicate) or sorted(mentions.get(predicate, ())),
        }
        for (subject_id, object_id, predicate), confidence in best.items()
    ]
    rows.sort(key=lambda r: (-r["confidence"], r["subject_id"], r["object_id"], r["predicate"]))
    return rows
