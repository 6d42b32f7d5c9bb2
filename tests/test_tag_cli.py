"""Every tag option is reachable from ``relfactory label`` flags."""

from __future__ import annotations

import pytest

from pipeline.cli import build_config, make_parser
from pipeline.config import ConfigError


def _tag_config(*flags: str):
    return build_config(make_parser().parse_args(["label", *flags])).tag


def test_tag_flags_reach_the_config() -> None:
    tag = _tag_config("--tagger", "greedy", "--require-overlap", "--tagger-seed", "3",
                      "--max-relations-per-image", "50", "--max-relations-per-proposal", "none",
                      "--rtagger-confidence", "relation-only", "--tag-device", "cpu")
    assert (tag.tagger, tag.require_overlap, tag.seed, tag.max_relations_per_image, tag.max_relations_per_proposal,
            tag.confidence, tag.device) == ("greedy", True, 3, 50, None, "relation-only", "cpu")
    default = _tag_config()
    assert (default.tagger, default.require_overlap, default.max_relations_per_image,
            default.max_relations_per_proposal) == ("layout", False, 100, 10)
    assert _tag_config("--no-require-overlap", "--tagger", "greedy-all").require_overlap is False


@pytest.mark.parametrize("value", ["0", "many"])
def test_bad_caps_are_refused_naming_the_field(value: str) -> None:
    with pytest.raises(ConfigError, match="tag.max_relations_per_image"):
        _tag_config("--max-relations-per-image", value)
