"""Stage 3, match: turn caption triplets into candidate subject-object box pairs.

A triplet ⟨subject, relation, object⟩ says nothing about *which* boxes it talks
about, only about classes. So every triplet whose subject matches class A and
object matches class B proposes its relation for every ordered pair (box of A,
box of B) in the image. The pairs, each carrying the relation texts proposed for
it and by which captions, are what the tagger later scores; the image's full
list of relation texts T travels with them, because the R-Tagger scores every
pair against all of T, not only against the texts proposed for that pair.

Relation texts are the parser's lemmatised relations ("ride", "sit on"), so
"riding", "rides" and "is riding" from different captions become one predicate
backed by all of those captions.

Each (relation, subject class, object class) a caption states is a *proposal*;
the rows list them (``class_proposals``) with how each caption wrote the two
sides' number ("a man" / "two men" / "people", see :mod:`stages.entity_number`)
so the tagger can decide how many of the candidate pairs the relation deserves.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from pipeline.config import RunConfig
from pipeline.contracts import ErrorRow, Row, StageOutput
from stages.entity_number import UNKNOWN, EntityNumber, entity_number
from stages.vocab import EntityMatcher, class_key, matcher_for, matcher_with_categories

STAGE = "match"

PairKey = tuple[int, int]  # (subject_id, object_id)
ProposalKey = tuple[str, str, str]  # (relation, subject class key, object class key)


def run_match(inputs: dict[str, list[Row]], cfg: RunConfig) -> StageOutput:
    """Candidate pairs per image, in chunks of at most ``cfg.match.max_pairs_per_chunk``."""
    images = {row["image_id"]: row for row in inputs["ingest"]}
    captions_by_image: dict[int, list[Row]] = defaultdict(list)
    for row in inputs["parse"]:
        captions_by_image[row["image_id"]].append(row)

    base = matcher_for(cfg.match, cfg.dataset.kind)
    categories = frozenset(
        obj["category"] for image in images.values() for obj in image.get("objects") or [] if obj.get("category")
    )
    matcher = matcher_with_categories(base, categories)

    out = StageOutput()
    for image_id in sorted(captions_by_image):
        parse_rows = captions_by_image[image_id]
        image = images.get(image_id)
        if image is None:
            out.errors.append(
                ErrorRow(image_id, STAGE, "unknown_image", f"{len(parse_rows)} parse rows for an image not in ingest")
            )
            continue
        out.rows.extend(match_image(image, parse_rows, matcher, cfg))
    return out


def match_image(image: Row, parse_rows: Iterable[Row], matcher: EntityMatcher, cfg: RunConfig) -> list[Row]:
    """The MATCH rows of one image (none when no triplet lands on a box pair)."""
    boxes_by_class: dict[str, list[Row]] = defaultdict(list)
    for obj in sorted(image.get("objects") or [], key=lambda o: o["object_id"]):
        if obj.get("category"):
            boxes_by_class[class_key(obj["category"])].append(obj)

    mentions: dict[str, set[int]] = defaultdict(set)
    proposals: dict[PairKey, dict[str, set[int]]] = defaultdict(lambda: defaultdict(set))
    pair_boxes: dict[PairKey, tuple[Row, Row]] = {}
    class_proposals: dict[ProposalKey, dict[int, list[Row]]] = defaultdict(lambda: defaultdict(list))
    for row in parse_rows:
        caption_index = row["caption_index"]
        for triplet in row.get("triplets") or []:
            relation = relation_text(triplet)
            if not relation:
                continue
            mentions[relation].add(caption_index)
            subject_class = matcher.match(triplet.get("subject"), triplet.get("subject_head"))
            object_class = matcher.match(triplet.get("object"), triplet.get("object_head"))
            if subject_class is None or object_class is None:
                continue
            if boxes_by_class.get(subject_class) and boxes_by_class.get(object_class):
                class_proposals[(relation, subject_class, object_class)][caption_index].append(triplet)
            for subject in boxes_by_class.get(subject_class, ()):
                for obj in boxes_by_class.get(object_class, ()):
                    if subject["object_id"] == obj["object_id"] and not cfg.match.allow_self_pairs:
                        continue
                    key = (subject["object_id"], obj["object_id"])
                    pair_boxes[key] = (subject, obj)
                    proposals[key][relation].add(caption_index)

    if not proposals:
        return []
    texts = sorted(mentions)
    relation_captions = [{"relation": text, "caption_indices": sorted(mentions[text])} for text in texts]
    pairs = [_pair_row(key, pair_boxes[key], proposals[key]) for key in sorted(proposals)]
    listed = _class_proposal_rows(class_proposals, boxes_by_class, pairs)
    size = cfg.match.max_pairs_per_chunk
    return [
        {"image_id": image["image_id"], "chunk_index": i, "relation_texts": texts,
         "relation_captions": relation_captions, "pairs": pairs[start : start + size], "class_proposals": listed}
        for i, start in enumerate(range(0, len(pairs), size))
    ]


def _mention(caption_index: int, triplets: list[Row]) -> Row:
    """How one caption writes a proposal's two sides, over all its triplets for that proposal."""
    subject = _side_number(triplets, "subject")
    obj = _side_number(triplets, "object")
    return {"caption_index": caption_index, "subject_number": subject.number, "subject_count": subject.count,
            "object_number": obj.number, "object_count": obj.count}


def _side_number(triplets: list[Row], side: str) -> EntityNumber:
    # Differently written phrases in one caption are different entities ("the bride and the groom cutting a
    # cake": two subjects, one cake), so their counts add up; the same phrase twice is one entity.
    phrases = {" ".join(str(t.get(side) or "").lower().split()): t.get(f"{side}_head") for t in triplets}
    numbers = [entity_number(phrase, head) for phrase, head in phrases.items()]
    if len(numbers) == 1:
        return numbers[0]
    if any(n.number is None for n in numbers):
        return UNKNOWN
    counts = [n.count for n in numbers]
    return EntityNumber("plural", sum(c for c in counts if c is not None) if None not in counts else None)


def _class_proposal_rows(class_proposals: dict[ProposalKey, dict[int, list[Row]]],
                         boxes_by_class: dict[str, list[Row]], pairs: list[Row]) -> list[Row]:
    """The image's proposals, each named by its boxes' category as written, with its candidate-pair count."""
    candidates: dict[ProposalKey, int] = defaultdict(int)
    for pair in pairs:
        classes = (class_key(pair["subject_category"]), class_key(pair["object_category"]))
        for proposal in pair["proposals"]:
            candidates[(proposal["relation"], *classes)] += 1
    rows = []
    for key, found in sorted(class_proposals.items()):
        relation, subject_class, object_class = key
        n_pairs = candidates.get(key, 0)
        if n_pairs == 0:  # only self-pairs, which are not candidates
            continue
        rows.append({"relation": relation, "subject_category": boxes_by_class[subject_class][0]["category"],
                     "object_category": boxes_by_class[object_class][0]["category"], "n_pairs": n_pairs,
                     "mentions": [_mention(index, found[index]) for index in sorted(found)]})
    return rows


def relation_text(triplet: Row) -> str:
    """The predicate text of a triplet: its lemma, else its phrase, whitespace-normalised."""
    text = triplet.get("relation_lemma") or triplet.get("relation") or ""
    return " ".join(text.lower().split())


def _pair_row(key: PairKey, boxes: tuple[Row, Row], proposed: dict[str, set[int]]) -> Row:
    subject, obj = boxes
    return {
        "subject_id": key[0],
        "object_id": key[1],
        "subject_category": subject["category"],
        "object_category": obj["category"],
        "proposals": [
            {"relation": relation, "caption_indices": sorted(proposed[relation])} for relation in sorted(proposed)
        ],
    }
