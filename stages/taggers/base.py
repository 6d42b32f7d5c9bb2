"""The tagger interface: score candidate subject-object pairs against relation texts.

A tagger sees MATCH rows (``storage.schemas.MATCH``) and returns, for any pair
it likes, a confidence per relation text. Everything else (thresholding at η,
merging chunks, de-duplication, provenance, the TAG row) is done once by
:func:`stages.tag.run_tag`, so a backend only has to do the scoring.

Contract for implementations (``GreedyTagger`` here, ``RTagger`` elsewhere):

* ``Tagger(tag_cfg)`` builds it from :class:`pipeline.config.TagConfig`; heavy
  state (model weights) is loaded there or lazily on first use, never per call.
  :func:`stages.taggers.build_tagger` caches instances per config, so one process
  builds each tagger once.
* ``tag(chunks, images, image_root)`` receives the chunks of one or more images;
  all chunks of an image come in the same call. ``images`` maps every image_id of
  ``chunks`` to its INGEST row (``objects`` holds the boxes as x, y, w, h pixels).
  Pixels, if needed, are read with ``pipeline.images.load_image(image_root,
  row["file_name"])``.
* Every :class:`ScoredRelation` must name a pair present in that image's chunks
  and a predicate from that image's ``relation_texts`` (T); anything else is a
  bug and makes the stage raise. Scoring a pair/predicate more than once is fine
  (the maximum is kept). Confidences are in [0, 1]. Scores at or below η may be
  returned; the stage filters them, which keeps η out of the backends.
* An image the tagger cannot handle (unreadable pixels, ...) becomes an
  :class:`ErrorRow` with ``stage="tag"`` in ``TaggerResult.errors``; ``tag`` must
  not raise for bad input. Such an image gets no TAG row, and any scores
  returned for it are ignored.
* Results must be deterministic for a fixed config and input.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from pipeline.contracts import ErrorRow, Row


@dataclass(frozen=True)
class ScoredRelation:
    """A tagger's belief that ``predicate`` holds from ``subject_id`` to ``object_id``."""

    image_id: int
    subject_id: int
    object_id: int
    predicate: str
    confidence: float


@dataclass
class TaggerResult:
    scores: list[ScoredRelation] = field(default_factory=list)
    errors: list[ErrorRow] = field(default_factory=list)


class Tagger(ABC):
    """Scores candidate pairs of MATCH chunks; see the module docstring for the contract."""

    name: ClassVar[str]
    # Whether ``tag`` reads pixels: the stage only resolves the image root for those.
    needs_pixels: ClassVar[bool] = True

    @abstractmethod
    def tag(self, chunks: list[Row], images: dict[int, Row], image_root: Path) -> TaggerResult:
        """Score the pairs of ``chunks`` (MATCH rows) against their images' relation texts."""


def iter_pairs(chunks: list[Row]) -> Iterator[tuple[int, Row]]:
    """``(image_id, pair)`` for every candidate pair of ``chunks``, in chunk order."""
    for chunk in chunks:
        for pair in chunk["pairs"]:
            yield chunk["image_id"], pair


def boxes_by_id(image: Row) -> dict[int, Row]:
    """An INGEST row's objects keyed by object_id."""
    return {obj["object_id"]: obj for obj in image.get("objects") or []}
