"""``layout`` (the default tagger): which box pairs a caption's relation belongs to, from the layout
and the caption's number, with no learned weights and no pixels.

The greedy rule puts "hold" on every person-bat pair. This tagger works per
proposal (a relation between two classes, see :mod:`stages.taggers.proposals`):

1. **Affinity** of each candidate pair (:mod:`stages.taggers.geometry`):
   proximity scaled by the boxes' size, a bonus for overlap, a penalty when a
   spatial relation ("on", "under", "next to", "behind", "in") contradicts the
   layout, and a small preference for salient (large, central) subjects.
2. **How many pairs** the captions allow (:func:`pair_budget`): "a man" is one
   subject, "two men" at most two, "people" several; a singular side gets one
   partner per box of the other side. With no number stated on either side
   (the benchmark, or a parse without one), a pair is taken only when each of
   its boxes is the other's best partner ("mutual best"): one-to-one where the
   layout pairs boxes off, and a box nobody prefers stays out.
   A negated relation ("no interaction", "not holding") is the exception: it
   says who does *not* interact, which the layout cannot single out, so every
   candidate pair is taken (:func:`is_negated`).
3. **Selection**: pairs in order of affinity, taken while the budget allows.
   For an uncounted plural ("people at a table"), a second subject for one
   object must have at least :data:`EXTRA_RATIO` of the first one's affinity:
   the people near the table, not everyone in the room.
4. **Confidence** in [0, 1]: a chosen pair scores above 0.2 (the default η),
   higher the less its boxes compete with other candidates, the closer they
   are, and the less either box looks like a duplicate (a same-class twin at
   IoU >= :data:`TWIN_IOU`); a pair not chosen scores at most 0.2, ordered the
   same way. So the default η keeps exactly the chosen pairs, a higher η keeps
   the clearer ones of them, and a lower η lets the best runners-up in.

The constants are few and documented here; they were chosen on the HICO-DET
dev file of the pair benchmark (bench/tagger_pairs.py), which measures them.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from pipeline.config import TagConfig
from pipeline.contracts import Row
from stages.entity_number import EntityNumber
from stages.taggers.base import ScoredRelation, Tagger, TaggerResult
from stages.taggers.geometry import affinity, area, box_iou, salience, spatial_agreement
from stages.taggers.proposals import Pair, Proposal, proposals_per_image

# Confidence that separates chosen pairs (above) from runners-up (at or below).
CHOSEN_FLOOR = 0.2
# An additional subject of an object (or object of a subject) needs this share of the first one's affinity.
EXTRA_RATIO = 0.5
# How much salience can move a subject's affinity: a tie-breaker, not a ranking of its own.
SALIENCE_WEIGHT = 0.1
# Two boxes of one class overlapping this much (the usual NMS threshold) may be one thing boxed twice.
TWIN_IOU = 0.5
# Words that negate a relation text: closed-class English, written from grammar.
NEGATIONS = frozenset({"no", "not", "without", "never", "nothing", "none", "nobody"})


@dataclass(frozen=True)
class PairBudget:
    """Limits on a proposal's pairs; None means no limit."""

    subjects: int | None  # distinct subject boxes
    objects: int | None  # distinct object boxes
    subjects_per_object: int | None
    objects_per_subject: int | None
    # Share of a box's first partner's affinity a further partner needs: :data:`EXTRA_RATIO` for an
    # uncounted plural side ("people"), whose size only the layout can bound; 0 otherwise.
    extra_subject_ratio: float = 0.0
    extra_object_ratio: float = 0.0
    # Nothing stated about either side: a pair needs each box to be the other's best partner.
    mutual_best: bool = False


def pair_budget(subject: EntityNumber, obj: EntityNumber) -> PairBudget:
    """What the captions' wording allows: counts bound the distinct boxes of each side; a side may have
    several partners per box only when it is plural and the other side is not (more) plural."""
    return PairBudget(
        subjects=subject.count,
        objects=obj.count,
        subjects_per_object=_partners(subject, obj),
        objects_per_subject=_partners(obj, subject, unknown_other=None),
        extra_subject_ratio=EXTRA_RATIO if _uncounted_plural(subject) else 0.0,
        extra_object_ratio=EXTRA_RATIO if _uncounted_plural(obj) else 0.0,
        mutual_best=subject.number is None and obj.number is None,
    )


def is_negated(relation: str) -> bool:
    """Whether a relation text states an absence ("no interaction", "not holding")."""
    words = set(relation.lower().replace("n't", " not").split())
    return bool(words & NEGATIONS)


def _uncounted_plural(side: EntityNumber) -> bool:
    return side.number == "plural" and side.count is None


def _partners(side: EntityNumber, other: EntityNumber, unknown_other: int | None = 1) -> int | None:
    """How many boxes of ``side`` one box of ``other`` may pair with."""
    if side.number == "plural":
        if other.count is not None and side.count is not None:
            return max(1, math.ceil(side.count / other.count))
        if other.number == "singular":
            return None  # "people around a table": any number of them, one table
        return 1  # both plural and uncounted: pair them off
    if side.number is None and other.number != "plural":
        # This side's number unknown, the other's not plural: one subject per object, but a subject may
        # have several objects. With neither number known, PairBudget.mutual_best narrows this further.
        return unknown_other
    return 1


class LayoutTagger(Tagger):
    name = "layout"
    needs_pixels = False

    def __init__(self, tag_cfg: TagConfig) -> None:
        del tag_cfg  # its constants are module-level and documented above

    def tag(self, chunks: list[Row], images: dict[int, Row], image_root: Path) -> TaggerResult:
        result = TaggerResult()
        for found in proposals_per_image(chunks, images, result.errors):
            for proposal in found.proposals:
                for (subject_id, object_id), confidence in score_proposal(proposal, found.boxes, found.image).items():
                    result.scores.append(ScoredRelation(found.image_id, subject_id, object_id, proposal.relation,
                                                        confidence))
        return result


def score_proposal(proposal: Proposal, boxes: dict[int, Row], image: Row) -> dict[Pair, float]:
    """Confidence of every candidate pair of one proposal."""
    pairs = list(dict.fromkeys(proposal.pairs))
    largest = max((area(boxes[s]) for s, _ in pairs), default=0.0)
    affinities = {
        (s, o): affinity(boxes[s], boxes[o]) * spatial_agreement(proposal.relation, boxes[s], boxes[o])
        * (1.0 - SALIENCE_WEIGHT + SALIENCE_WEIGHT * salience(boxes[s], image, largest))
        for s, o in pairs
    }
    if is_negated(proposal.relation):
        # Every pair is taken; the farther apart, the surer the absence of an interaction.
        return {pair: CHOSEN_FLOOR + (1.0 - CHOSEN_FLOOR) * (1.0 - 0.5 * value) for pair, value in affinities.items()}
    budget = pair_budget(proposal.subject, proposal.object)
    chosen = select_pairs(affinities, budget)
    shares = competition_shares(affinities, budget)
    subject_twins = twin_counts({s for s, _ in pairs}, boxes)
    object_twins = twin_counts({o for _, o in pairs}, boxes)
    scores = {}
    for pair, value in affinities.items():
        # A box with a near-identical twin may be a duplicate: the relation may belong to the twin instead.
        evidence = shares[pair] * (0.5 + 0.5 * value) / ((1 + subject_twins[pair[0]]) * (1 + object_twins[pair[1]]))
        if pair in chosen:
            scores[pair] = CHOSEN_FLOOR + (1.0 - CHOSEN_FLOOR) * evidence
        else:
            scores[pair] = CHOSEN_FLOOR * evidence
    return scores


def twin_counts(box_ids: set[int], boxes: dict[int, Row]) -> dict[int, int]:
    """For each box, how many other boxes of the set overlap it by at least :data:`TWIN_IOU`."""
    ordered = sorted(box_ids)
    return {i: sum(1 for j in ordered if j != i and box_iou(boxes[i], boxes[j]) >= TWIN_IOU) for i in ordered}


def select_pairs(affinities: dict[Pair, float], budget: PairBudget) -> set[Pair]:
    """Pairs in order of affinity (ties by ids), taken while ``budget`` allows."""
    subjects: set[int] = set()  # distinct boxes chosen so far, per side
    objects: set[int] = set()
    per_subject: dict[int, int] = defaultdict(int)
    per_object: dict[int, int] = defaultdict(int)
    chosen: set[Pair] = set()
    ranked = sorted(affinities.items(), key=lambda item: (-item[1], item[0]))
    best_of_subject: dict[int, Pair] = {}  # each box's best partner (first in rank order)
    best_of_object: dict[int, Pair] = {}
    for pair, _ in ranked:
        best_of_subject.setdefault(pair[0], pair)
        best_of_object.setdefault(pair[1], pair)
    for (s, o), value in ranked:
        if budget.mutual_best and not best_of_subject[s] == best_of_object[o] == (s, o):
            continue
        if s not in subjects and budget.subjects is not None and len(subjects) >= budget.subjects:
            continue
        if o not in objects and budget.objects is not None and len(objects) >= budget.objects:
            continue
        if not _room(per_object[o], budget.subjects_per_object) or not _room(per_subject[s], budget.objects_per_subject):
            continue
        # A further partner of a box already paired must be nearly as plausible as its first one.
        if per_object[o] and value < budget.extra_subject_ratio * _first(chosen, affinities, o, side=1):
            continue
        if per_subject[s] and value < budget.extra_object_ratio * _first(chosen, affinities, s, side=0):
            continue
        chosen.add((s, o))
        subjects.add(s)
        objects.add(o)
        per_subject[s] += 1
        per_object[o] += 1
    return chosen


def _room(used: int, limit: int | None) -> bool:
    return limit is None or used < limit


def _first(chosen: set[Pair], affinities: dict[Pair, float], box: int, side: int) -> float:
    return max(affinities[p] for p in chosen if p[side] == box)


def competition_shares(affinities: dict[Pair, float], budget: PairBudget) -> dict[Pair, float]:
    """Each pair's share of the affinity among the pairs it competes with, in (0, 1].

    Subjects compete for an object when an object takes one subject, objects
    for a subject when a subject takes one object (both under mutual best);
    with one candidate the share is 1.
    """
    by_object: dict[int, float] = defaultdict(float)
    by_subject: dict[int, float] = defaultdict(float)
    for (s, o), value in affinities.items():
        by_object[o] += value
        by_subject[s] += value
    shares = {}
    for (s, o), value in affinities.items():
        share = 1.0
        if budget.subjects_per_object == 1 or budget.mutual_best:
            share = min(share, value / by_object[o])
        if budget.objects_per_subject == 1 or budget.mutual_best:
            share = min(share, value / by_subject[s])
        shares[(s, o)] = share
    return shares
