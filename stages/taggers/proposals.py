"""An image's proposals, rebuilt from its MATCH chunks.

A proposal is one relation text that captions state between two classes
("hold", person, baseball bat); its candidates are the image's box pairs of
those classes that match proposed it for. Taggers that reason per proposal
(``layout``, ``nearest``) and the tag stage's caps and bookkeeping all group
pairs the same way, through :func:`image_proposals`.

The candidate pairs always come from ``pairs``; what the captions say about the
two sides' number comes from ``class_proposals`` when present (MATCH rows
written before it existed read back with it null: number unknown).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from pipeline.contracts import ErrorRow, Row
from stages.entity_number import UNKNOWN, EntityNumber, combine
from stages.taggers.base import boxes_by_id
from stages.vocab import class_key

ProposalKey = tuple[str, str, str]  # (relation, subject class key, object class key)
Pair = tuple[int, int]  # (subject_id, object_id)


@dataclass
class Proposal:
    relation: str
    subject_category: str
    object_category: str
    pairs: list[Pair] = field(default_factory=list)  # candidates, in chunk order
    subject: EntityNumber = UNKNOWN
    object: EntityNumber = UNKNOWN

    @property
    def key(self) -> ProposalKey:
        return proposal_key(self.relation, self.subject_category, self.object_category)


def proposal_key(relation: str, subject_category: str, object_category: str) -> ProposalKey:
    return relation, class_key(subject_category), class_key(object_category)


def image_proposals(chunks: Iterable[Row]) -> list[Proposal]:
    """The proposals of one image's chunks, sorted by key, each with its candidate pairs and number."""
    chunks = list(chunks)
    found: dict[ProposalKey, Proposal] = {}
    for chunk in chunks:
        for pair in chunk["pairs"]:
            for proposed in pair["proposals"]:
                key = proposal_key(proposed["relation"], pair["subject_category"], pair["object_category"])
                proposal = found.get(key)
                if proposal is None:
                    proposal = found[key] = Proposal(proposed["relation"], pair["subject_category"],
                                                     pair["object_category"])
                proposal.pairs.append((int(pair["subject_id"]), int(pair["object_id"])))
    listed = next((chunk.get("class_proposals") for chunk in chunks if chunk.get("class_proposals")), None) or []
    for entry in listed:
        proposal = found.get(proposal_key(entry["relation"], entry["subject_category"], entry["object_category"]))
        if proposal is not None:
            proposal.subject, proposal.object = side_numbers(entry.get("mentions") or [])
    return [found[key] for key in sorted(found)]


def side_numbers(mentions: list[Row]) -> tuple[EntityNumber, EntityNumber]:
    """The subject's and the object's number over the captions that stated the proposal (one mention each)."""
    subjects = [EntityNumber(m["subject_number"], m["subject_count"]) for m in mentions]
    objects = [EntityNumber(m["object_number"], m["object_count"]) for m in mentions]
    return combine(subjects), combine(objects)


@dataclass
class ImageProposals:
    image_id: int
    image: Row
    boxes: dict[int, Row]  # object_id -> box row
    proposals: list[Proposal]


def proposals_per_image(chunks: Iterable[Row], images: dict[int, Row], errors: list[ErrorRow]) -> Iterator[ImageProposals]:
    """Each image's proposals with its boxes; an image whose pairs name boxes it lacks becomes an error row."""
    by_image: dict[int, list[Row]] = defaultdict(list)
    for chunk in chunks:
        by_image[chunk["image_id"]].append(chunk)
    for image_id, image_chunks in by_image.items():
        image = images[image_id]
        boxes = boxes_by_id(image)
        proposals = image_proposals(image_chunks)
        missing = {i for p in proposals for pair in p.pairs for i in pair if i not in boxes}
        if missing:
            errors.append(ErrorRow(image_id, "tag", "unknown_object",
                                   f"pairs name boxes not in the image: {sorted(missing)[:5]}"))
            continue
        yield ImageProposals(image_id, image, boxes, proposals)
