"""Distinct label texts must get distinct vectors, and the guard must say so when they do not."""

from __future__ import annotations

import logging

import pytest
import torch

from model import RLIPv2Config, build_model
from model.text_check import NEAR_IDENTICAL_COSINE, PROBE_TEXTS, max_label_cosine, warn_if_labels_collapse
from model.text_encoder import LabelTextEncoder

TEXTS = ["person", "dog", "cup", "on", "holding", "next to", "riding", "in front of"]


@pytest.mark.parametrize("variant", ["parsed", "parseda", "rtagger"])
def test_tiny_preset_gives_distinct_texts_distinct_vectors(variant: str) -> None:
    torch.manual_seed(0)
    model = build_model(RLIPv2Config.tiny(variant))
    assert max_label_cosine(model.text_encoder, TEXTS) < NEAR_IDENTICAL_COSINE
    # After the resizer and the classifier's projection too: what the heads compare against.
    with torch.no_grad():
        labels = model.encode_labels([TEXTS[:4]], [TEXTS[4:]])
        projected = model.classifier.project_text(model.text_resizer(labels.features))[0]
    real = torch.cat((projected[:4], projected[labels.max_entities:labels.max_entities + 4]))
    unit = torch.nn.functional.normalize(real, dim=-1)
    cosine = unit @ unit.t()
    cosine.fill_diagonal_(-1)
    assert float(cosine.max()) < NEAR_IDENTICAL_COSINE


def test_small_preset_uses_the_pretrained_offline_minilm() -> None:
    encoder = LabelTextEncoder(RLIPv2Config.small())
    with torch.no_grad():
        ride, riding, cup = torch.nn.functional.normalize(encoder(["ride", "riding", "cup"]), dim=-1)
    # Pretrained language features: a paraphrase is closer than an unrelated word.
    assert float(ride @ riding) > float(ride @ cup) + 0.3


def test_pooler_of_a_random_encoder_collapses_and_the_guard_warns(caplog: pytest.LogCaptureFixture) -> None:
    torch.manual_seed(0)
    collapsed = LabelTextEncoder(RLIPv2Config.tiny(text_pooling="pooler"))
    with caplog.at_level(logging.WARNING, logger="relfactory.model"):
        worst = warn_if_labels_collapse(collapsed, PROBE_TEXTS, where="test")
    assert worst > NEAR_IDENTICAL_COSINE
    assert "near-identical" in caplog.text and "test" in caplog.text


def test_build_warns_only_for_a_collapsing_preset(caplog: pytest.LogCaptureFixture) -> None:
    torch.manual_seed(0)
    with caplog.at_level(logging.WARNING, logger="relfactory.model"):
        build_model(RLIPv2Config.tiny())
    assert "near-identical" not in caplog.text
    with caplog.at_level(logging.WARNING, logger="relfactory.model"):
        build_model(RLIPv2Config.tiny(text_pooling="cls"))
    assert "near-identical" in caplog.text
