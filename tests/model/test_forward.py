"""Forward/backward of ParSeD, ParSeDA and the R-Tagger on tiny configs (CPU)."""

from __future__ import annotations

import pytest
import torch

from model import RLIPv2Config, build_model
from model.losses import SetCriterion

from .conftest import ENTITIES, RELATIONS, make_images, make_targets


@pytest.mark.parametrize("variant", ["parsed", "parseda", "rtagger"])
def test_forward_backward_shapes_and_gradients(variant: str) -> None:
    torch.manual_seed(0)
    config = RLIPv2Config.tiny(variant)
    model = build_model(config).train()
    targets = make_targets()
    out = model(make_images(), (ENTITIES, RELATIONS), targets)

    n = config.num_queries
    # Entity labels gain the no-object token; both blocks are padded to the batch maximum.
    assert out["pred_sub_logits"].shape == (2, n, 4)
    assert out["pred_verb_logits"].shape == (2, n, 3)
    assert out["pred_obj_boxes"].shape == (2, n, 4)
    assert ((out["pred_sub_boxes"] > 0) & (out["pred_sub_boxes"] < 1)).all()
    assert out["no_object_index"].tolist() == [3, 2]
    # Padded label slots can never win: image 2 has 3 entity labels and 2 relations.
    assert (out["pred_obj_logits"][1, :, 3] < -1e3).all()
    assert (out["pred_verb_logits"][1, :, 2] < -1e3).all()
    assert len(out["aux_outputs"]) == config.dec_layers - 1

    losses = SetCriterion.for_model(config)(out, targets)
    assert torch.isfinite(losses["loss"])
    losses["loss"].backward()
    grads = {name: p.grad for name, p in model.named_parameters() if p.requires_grad}
    for name in ("backbone.body.layer4.0.conv3.weight", "encoder.fusion.0.attn.v_proj.weight",
                 "encoder.language_layers.0.layer.output.dense.weight", "relation_decoder.layers.0.cross_attn.value_proj.weight",
                 "classifier.projection_text.weight", "text_encoder.model.embeddings.word_embeddings.weight"):
        assert grads[name] is not None and grads[name].abs().sum() > 0, name
    # DETR keeps the stem and layer1 frozen.
    assert not model.backbone.body.conv1.weight.requires_grad


def test_variant_specific_parameters(tiny_models: dict) -> None:
    parsed, parseda, tagger = tiny_models["parsed"], tiny_models["parseda"], tiny_models["rtagger"]
    n, d = parsed.config.num_queries, parsed.config.hidden_dim
    assert parsed.query_embed.weight.shape == (2 * n, 3 * d)
    assert hasattr(parsed, "verb_tgt_generator") and parsed.verb_query_embed.weight.shape == (n, d)
    assert parseda.refpoint_embed.weight.shape == (2 * n, 4)
    assert hasattr(parseda.entity_decoder, "ref_point_head") and not hasattr(parseda, "verb_query_embed")
    assert tagger.coord_proj.weight.shape == (d, 4) and tagger.verb_tgt.weight.shape == (2 * n, d)
    assert not hasattr(tagger, "query_embed") and not hasattr(tagger, "verb_tgt_generator")
    # Box heads: one per entity-decoder layer plus one per relation-decoder layer.
    assert len(parsed.sub_bbox_embed) == 2 * parsed.config.dec_layers


def test_rtagger_requires_pairs(tiny_models: dict) -> None:
    with pytest.raises(ValueError, match="given pairs"):
        tiny_models["rtagger"](make_images(), (ENTITIES, RELATIONS))


@pytest.mark.parametrize("vision_layers,blocks", [(1, 6), (3, 2), (6, 1), (2, 3)])
def test_alif_layouts(vision_layers: int, blocks: int) -> None:
    config = RLIPv2Config.tiny("parsed", alif_vision_layers=vision_layers, alif_blocks=blocks, dec_layers=3)
    model = build_model(config).eval()
    assert len(model.encoder.layers) == vision_layers * blocks
    assert len(model.encoder.fusion) == blocks == len(model.encoder.language_layers)
    with torch.no_grad():
        out = model(make_images()[:1], (ENTITIES[:1], RELATIONS[:1]))
    assert torch.isfinite(out["pred_verb_logits"]).all()
    # Decoder layer i reads ALIF stage i * N_ALIF // 3: the official choice for 3 and 6 blocks.
    stages = [config.stage_for_decoder_layer(i) for i in range(3)]
    assert stages == {6: [0, 2, 4], 3: [0, 1, 2], 2: [0, 0, 1], 1: [0, 0, 0]}[blocks]


def test_padding_does_not_change_valid_language_tokens(tiny_models: dict) -> None:
    """A label sequence padded inside a batch is encoded as if it were alone."""
    model = tiny_models["parsed"]
    images = make_images()
    with torch.no_grad():
        alone = model.encode(images[1:], (ENTITIES[1:], RELATIONS[1:]))
        padded_labels = model.encode_labels([ENTITIES[1], ENTITIES[0]], [RELATIONS[1], RELATIONS[0]])
        together = model.encode([images[1], images[1]], padded_labels)
    e, r = alone.labels.num_entities[0], alone.labels.num_relations[0]
    width = alone.labels.max_entities
    for stage_alone, stage_together in zip(alone.text, together.text):
        torch.testing.assert_close(stage_alone[0, :e], stage_together[0, :e], atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(stage_alone[0, width : width + r],
                                   stage_together[0, together.labels.max_entities : together.labels.max_entities + r],
                                   atol=1e-5, rtol=1e-4)
