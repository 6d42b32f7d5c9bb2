"""LSE, RPL and RQL, and the targets a batch is trained against."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from model.losses import focal_relation_loss
from stages.train.data import TrainSample, build_targets
from stages.train.labels import (
    CachedEmbedder,
    TextVocabulary,
    extend_sequence,
    pseudo_label_rows,
    relation_quality,
    relation_similarity,
    sample_negatives,
    sentence_transformer_embedder,
    soft_focal_loss,
)
from stages.train.records import Relation


def test_negatives_follow_frequency_and_exclude_positives() -> None:
    vocab = TextVocabulary.from_counts(Counter({"on": 1000, "near": 100, "holding": 10, "riding": 1}))
    draws = Counter()
    for seed in range(300):
        chosen = sample_negatives(vocab, {"near"}, 1, np.random.default_rng(seed))
        assert chosen != ["near"]
        draws.update(chosen)
    assert draws["on"] > draws["holding"] > draws["riding"]
    everything = sample_negatives(vocab, set(), 10, np.random.default_rng(0))
    assert sorted(everything) == sorted(vocab.texts)


def test_sequence_keeps_positives_first_and_pads_to_the_limit() -> None:
    vocab = TextVocabulary.from_counts(Counter({f"t{i}": i + 1 for i in range(50)}))
    seq = extend_sequence(["t3", "x", "t3"], vocab, 10, np.random.default_rng(1))
    assert seq[:2] == ["t3", "x"] and len(seq) == len(set(seq)) == 10
    assert extend_sequence(["a", "b", "c"], vocab, 2, np.random.default_rng(1)) == ["a", "b", "c"]
    assert extend_sequence(["t3"], vocab, 10, np.random.default_rng(7)) == \
        extend_sequence(["t3"], vocab, 10, np.random.default_rng(7))


def test_pseudo_labels_soften_close_relation_texts() -> None:
    similarity = torch.tensor([[1.0, 0.9, 0.1], [0.9, 1.0, 0.2], [0.1, 0.2, 1.0]])
    hard = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    soft = pseudo_label_rows(hard, similarity, threshold=0.5)
    assert torch.allclose(soft, torch.tensor([[1.0, 0.9, 0.0], [0.0, 0.0, 0.0]]))


def test_minilm_embeddings_put_paraphrases_together() -> None:
    embed = CachedEmbedder(sentence_transformer_embedder())
    sim = relation_similarity(["holding", "holds", "sitting under"], embed)
    assert sim[0, 1] > sim[0, 2] + 0.2
    assert torch.allclose(sim.diagonal(), torch.ones(3), atol=1e-5)


def test_soft_focal_loss_matches_the_hard_one_on_binary_targets() -> None:
    torch.manual_seed(0)
    pred = torch.rand(2, 5, 7)
    target = (torch.rand(2, 5, 7) > 0.8).float()
    valid = torch.ones_like(pred)
    assert torch.allclose(soft_focal_loss(pred, target, valid), focal_relation_loss(pred, target, valid), atol=1e-5)
    # A soft target is matched exactly by its own value.
    half = torch.full((1, 1, 1), 0.6)
    assert soft_focal_loss(half, half, torch.ones_like(half)) == pytest.approx(0.0, abs=1e-8)


def test_relation_quality_is_one_for_perfect_boxes_and_drops_with_the_worse_box() -> None:
    boxes = torch.tensor([[0.5, 0.5, 0.2, 0.2], [0.3, 0.3, 0.1, 0.1]])
    assert torch.allclose(relation_quality(boxes, boxes, boxes, boxes), torch.ones(2))
    shifted = boxes + torch.tensor([0.05, 0.0, 0.0, 0.0])
    q_one = relation_quality(boxes, shifted, boxes, boxes)
    q_two = relation_quality(shifted, shifted, boxes, boxes)
    assert torch.allclose(q_one, q_two) and (q_one < 1).all()


def _sample(n_rel: int) -> TrainSample:
    boxes = torch.rand(n_rel + 1, 4) * 0.5 + 0.1
    relations = [Relation(0, i + 1, "on" if i % 2 else "near", confidence=1.0 - i / 100) for i in range(n_rel)]
    return TrainSample(image=torch.zeros(3, 8, 8), boxes=boxes, names=["man"] + ["cup"] * n_rel,
                       relations=relations, image_id=1, dataset="t", negative_pairs=[(1, 0), (2, 1)])


def test_targets_cap_pairs_at_the_query_slots_keeping_the_most_confident() -> None:
    sample = _sample(12)
    (target,) = build_targets([sample], ["man", "cup"], ["near", "on", "far"], max_pairs=8)
    assert target["sub_labels"].tolist() == [0] * 8 and target["obj_labels"].tolist() == [1] * 8
    assert torch.equal(target["obj_boxes"], sample.boxes[1:9])
    assert target["verb_labels"].tolist()[:2] == [[1, 0, 0], [0, 1, 0]]


def test_tagger_targets_add_negative_pairs_in_free_slots() -> None:
    (target,) = build_targets([_sample(2)], ["man", "cup"], ["near", "on"], max_pairs=3)
    assert len(target["sub_labels"]) == 3
    assert target["verb_labels"][2].sum() == 0  # the negative pair (1, 0)
    assert target["sub_labels"][2] == 1 and target["obj_labels"][2] == 0


def test_missing_object_gets_no_object_token_and_empty_box() -> None:
    sample = TrainSample(image=torch.zeros(3, 8, 8), boxes=torch.tensor([[0.5, 0.5, 0.2, 0.2]]), names=["man"],
                         relations=[Relation(0, -1, "stand")], image_id=1, dataset="v-coco")
    (target,) = build_targets([sample], ["man", "cup"], ["stand"], max_pairs=4)
    assert target["obj_labels"].tolist() == [2]
    assert target["obj_boxes"].tolist() == [[0, 0, 0, 0]]
