"""Tagger backends behind one interface (see :mod:`stages.taggers.base`).

    >>> from pipeline.config import TagConfig
    >>> build_tagger(TagConfig(tagger="greedy")).name
    'greedy'
"""

from __future__ import annotations

from functools import lru_cache

from pipeline.config import TagConfig, canonical_json
from stages.taggers.base import ScoredRelation, Tagger, TaggerResult

__all__ = ["TAGGERS", "ScoredRelation", "Tagger", "TaggerResult", "build_tagger"]

TAGGERS: tuple[str, ...] = ("layout", "greedy", "greedy-all", "nearest", "rtagger", "clip")


def build_tagger(tag_cfg: TagConfig) -> Tagger:
    """The tagger ``tag_cfg`` asks for, built once per process per configuration."""
    return _cached_tagger(canonical_json(tag_cfg.model_dump(mode="json")))


@lru_cache(maxsize=4)
def _cached_tagger(cfg_json: str) -> Tagger:
    tag_cfg = TagConfig.model_validate_json(cfg_json)
    if tag_cfg.tagger == "layout":
        from stages.taggers.layout import LayoutTagger

        return LayoutTagger(tag_cfg)
    if tag_cfg.tagger in ("greedy", "greedy-all"):
        from stages.taggers.greedy import GreedyAllTagger, GreedyTagger

        return GreedyTagger(tag_cfg) if tag_cfg.tagger == "greedy" else GreedyAllTagger(tag_cfg)
    if tag_cfg.tagger == "nearest":
        from stages.taggers.nearest import NearestTagger

        return NearestTagger(tag_cfg)
    if tag_cfg.tagger == "rtagger":
        # Imported lazily: it pulls in torch and the RLIPv2 model.
        from stages.taggers.rtagger import RTagger

        return RTagger(tag_cfg)
    if tag_cfg.tagger == "clip":
        from stages.taggers.clip import ClipTagger

        return ClipTagger(tag_cfg)
    raise ValueError(f"unknown tagger {tag_cfg.tagger!r}; known: {', '.join(TAGGERS)}")
