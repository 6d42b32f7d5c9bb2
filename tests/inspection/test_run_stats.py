"""The statistics behind inspect and report, on hand-made numbers."""

from __future__ import annotations

import numpy as np
import pytest

from flows.artifacts import artifact_key
from storage.card import size_category
from storage.run_stats import Distribution, ImageTrace, kept_vs_eta, why_no_output


def test_distribution_quantiles_match_numpy_and_top_share_counts_the_heaviest_items():
    counts = [0, 0, 1, 2, 2, 3, 5, 8, 13, 121]
    d = Distribution.of(counts)
    assert d.median == pytest.approx(np.median(counts)) and d.p95 == pytest.approx(np.percentile(counts, 95), abs=1e-3)
    assert d.max == 121 and d.zeros == 2 and d.n == 10 and d.total == 155
    assert d.top1_share == pytest.approx(121 / 155)  # 1 % of 10 items rounds up to one item
    hundred_and_one = Distribution.of([1] * 99 + [50, 50])
    assert hundred_and_one.top1_share == pytest.approx(100 / 199)  # ceil(1.01) = 2 items
    assert Distribution.of([]).line("relations").startswith("relations per image: median 0")


def test_kept_vs_eta_counts_strictly_above_each_threshold_from_the_runs_eta_up():
    values = [0.25, 0.3, 0.5, 0.5, 0.9, 1.0]
    curve = dict(kept_vs_eta(values, 0.2, steps=4))
    assert list(curve) == [0.2, 0.4, 0.6, 0.8, 1.0]
    assert curve == {0.2: 6, 0.4: 4, 0.6: 2, 0.8: 2, 1.0: 0}


def test_why_no_output_names_the_first_thing_that_went_missing():
    assert why_no_output(ImageTrace(), "caption") == "no captions"
    assert why_no_output(ImageTrace(captions=5), "caption") is None
    assert why_no_output(ImageTrace(captions=5), "shard") == "no triplet parsed from its captions"
    assert why_no_output(ImageTrace(captions=5, triplets=3), "tag") == "no triplet matched a pair of its boxes"
    scored = ImageTrace(captions=5, triplets=3, pairs=4, tag_row=True, scored_pairs=4)
    assert why_no_output(scored, "shard") == "every candidate pair scored at or below η"
    assert why_no_output(scored, "match") is None
    failed = ImageTrace(captions=5, errors=[("parse", "stage_failed")])
    assert why_no_output(failed, "caption") is None and why_no_output(failed, "tag") == "parse error: stage_failed"


def test_card_size_buckets_and_artifact_keys():
    assert [size_category(n) for n in (0, 999, 1000, 99_999, 2_000_000)] == \
        ["n<1K", "n<1K", "1K<n<10K", "10K<n<100K", "1M<n<10M"]
    assert artifact_key("COCO_blip.v2", "tag") == "relfactory-coco-blip-v2-tag"
