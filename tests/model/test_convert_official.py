"""The official-checkpoint converter, on state dicts synthesised with the official key names and shapes."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest
import torch

from model import RLIPv2Config, build_model
from model.convert_official import config_from_official_args, convert_state_dict, load_official

from .conftest import ENTITIES, RELATIONS, make_images, make_targets


def official_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Our weights under the names and shapes ``JacobYuan7/RLIPv2`` uses (written independently of the converter)."""
    config = model.config
    encoder = "transformer.encoder." if config.variant == "parseda" else "transformer.ho_encoder."
    layers = config.dec_layers
    rules = [
        (r"^backbone\.body\.", "backbone.0.body."),
        (r"^level_embed$", "transformer.level_embed"),
        (r"^text_encoder\.model\.", "transformer.text_encoder."),
        (r"^text_resizer\.", "transformer.resizer."),
        (r"^encoder\.layers\.", encoder + "layers."),
        (r"^encoder\.fusion\.(\d+)\.gate_([vl])\.alpha$", encoder + r"VLFuse_layers.\1.b_attn.gamma_\2"),
        (r"^encoder\.fusion\.(\d+)\.gate_([vl])\.(down|up)\.", encoder + r"VLFuse_layers.\1.b_attn.gamma_\2_\3."),
        (r"^encoder\.fusion\.(\d+)\.", encoder + r"VLFuse_layers.\1.b_attn."),
        (r"^encoder\.language_layers\.(\d+)\.layer\.", encoder + r"roberta_layers.\1."),
        (r"^reference_points_", "transformer.reference_points_"),
        (r"^entity_decoder\.", "transformer.ho_decoder."),
        (r"^relation_decoder\.", "transformer.verb_decoder."),
        (r"^classifier\.", ""),
        (r"^(verb_tgt_generator|verb_query_embed|coord_proj|verb_tgt)\b", r"transformer.\1"),
    ]
    out: dict[str, torch.Tensor] = {}
    for key, value in model.state_dict().items():
        name = key
        for pattern, repl in rules:
            if re.search(pattern, name):
                name = re.sub(pattern, repl, name)
                break
        if name.endswith(("gamma_v", "gamma_l")) and value.numel() == 1:
            # Official scalar gates keep a full vector and read element 0.
            width = config.hidden_dim if name.endswith("gamma_v") else model.text_encoder.hidden_size
            value = torch.cat([value, torch.randn(width - 1)])
        out[name] = value.clone()
        box = re.match(r"^(sub|obj)_bbox_embed\.(\d+)\.(.+)$", key)
        if box:
            role, index, rest = box.group(1), int(box.group(2)), box.group(3)
            decoder, local = ("ho", index) if index < layers else ("verb", index - layers)
            out[f"transformer.{decoder}_decoder.{role}_bbox_embed.{local}.{rest}"] = value.clone()
    out["transformer.text_encoder.embeddings.position_ids"] = torch.arange(64)[None]
    if config.variant == "rtagger":
        out["query_embed.weight"] = torch.randn(2 * config.num_queries, 3 * config.hidden_dim)
    return out


@pytest.mark.parametrize("variant,gate", [("parsed", "scalar"), ("parseda", "se"), ("rtagger", "vector")])
def test_official_weights_load_and_reproduce_outputs(variant: str, gate: str) -> None:
    torch.manual_seed(0)
    config = RLIPv2Config.tiny(variant, gate=gate)
    source = build_model(config).eval()
    official = official_state_dict(source)

    torch.manual_seed(1)
    target = build_model(config).eval()
    converted, report = convert_state_dict(official, target, config)
    assert report.ok, report.summary()
    assert any(r.startswith("alias of the top-level box heads") for r in report.ignored.values())
    if variant == "rtagger":
        assert "unused by the R-Tagger" in report.ignored["query_embed.weight"]
    target.load_state_dict(converted, strict=False)
    targets = make_targets() if variant == "rtagger" else None
    with torch.no_grad():
        want = source(make_images(), (ENTITIES, RELATIONS), targets)
        got = target(make_images(), (ENTITIES, RELATIONS), targets)
    for key in ("pred_sub_logits", "pred_verb_logits", "pred_obj_boxes"):
        torch.testing.assert_close(got[key], want[key])


def test_report_names_unmatched_keys_and_shape_mismatches(tmp_path: Path) -> None:
    torch.manual_seed(0)
    config = RLIPv2Config.tiny("parsed")
    model = build_model(config)
    official = official_state_dict(model)
    official["transformer.obj_fusion.layers.0.linear1.weight"] = torch.zeros(3, 3)
    official["transformer.level_embed"] = torch.zeros(5, config.hidden_dim)
    del official["transformer.ho_decoder.layers.0.norm1.weight"]
    _, report = convert_state_dict(official, model, config)
    assert report.unmatched_official == ["transformer.obj_fusion.layers.0.linear1.weight"]
    assert report.shape_mismatches == [("transformer.level_embed", (5, config.hidden_dim), (4, config.hidden_dim))]
    assert report.missing_ours == ["entity_decoder.layers.0.norm1.weight", "level_embed"]
    assert not report.ok and "obj_fusion" in report.summary()

    torch.save({"model": official, "args": argparse.Namespace(verb_tagger=False)}, tmp_path / "official.pth")
    with pytest.raises(ValueError, match="does not fit"):
        load_official(tmp_path / "official.pth", config)
    loaded, lenient = load_official(tmp_path / "official.pth", config, strict=False)
    assert not lenient.ok and loaded.config == config


def test_inconsistent_box_head_aliases_are_refused() -> None:
    config = RLIPv2Config.tiny("parsed")
    model = build_model(config)
    official = official_state_dict(model)
    official["transformer.verb_decoder.sub_bbox_embed.0.layers.0.weight"] += 1.0
    with pytest.raises(ValueError, match="inconsistent"):
        convert_state_dict(official, model, config)


def test_config_from_the_official_tagger_script_arguments() -> None:
    args = argparse.Namespace(
        dim_feedforward=1024, num_queries=200, enc_layers=6, dec_layers=3, backbone="resnet50",
        num_feature_levels=4, with_box_refine=True, RLIP_ParSeD_v2=True, fusion_type="GLIP_attn", fusion_interval=2,
        fusion_last_vis=True, verb_tagger=True, use_no_obj_token=True, lang_aux_loss=True, subject_class=True,
        gating_mechanism="GLIP", verb_query_tgt_type="vanilla", hidden_dim=256, nheads=8, dropout=0.1,
        text_encoder_type="roberta-base",
    )
    config = config_from_official_args(args)
    assert (config.variant, config.num_queries, config.dim_feedforward) == ("rtagger", 100, 1024)
    assert (config.alif_blocks, config.alif_vision_layers, config.gate, config.gate_tanh) == (3, 2, "vector", False)
    parseda = config_from_official_args({**vars(args), "verb_tagger": False, "RLIP_ParSeDA_v2": True,
                                         "gating_mechanism": "VXAc", "verb_query_tgt_type": "vanilla_MBF",
                                         "dim_feedforward": 2048, "fusion_interval": 1})
    assert (parseda.variant, parseda.gate, parseda.relation_query, parseda.alif_blocks) == ("parseda", "scalar",
                                                                                           "vanilla_mbf", 6)


SWIN_TINY_TEST = {"embed_dim": 16, "depths": [1, 2, 1, 1], "num_heads": [1, 2, 2, 4], "window_size": 2,
                  "drop_path_rate": 0.0}


def _original_swin_names(body: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``SwinBody`` weights under the original Swin names, qkv fused (independent of the converter)."""
    out: dict[str, torch.Tensor] = {}
    qkv: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in body.items():
        key = key.removeprefix("model.")
        if key.startswith("hidden_states_norms.stage"):
            stage, rest = key[len("hidden_states_norms.stage"):].split(".", 1)
            out[f"norm{int(stage) - 1}.{rest}"] = value
            continue
        key = key.removeprefix("swin.").replace("embeddings.patch_embeddings.projection", "patch_embed.proj")
        key = key.replace("embeddings.norm", "patch_embed.norm").removeprefix("encoder.")
        key = key.replace("layernorm_before", "norm1").replace("layernorm_after", "norm2")
        key = key.replace("attention.relative_position_bias.", "attn.").replace("attention.o_proj", "attn.proj")
        match = re.match(r"^(layers\.\d+\.blocks\.\d+)\.attention\.([qkv])_proj\.(weight|bias)$", key)
        if match:
            qkv.setdefault(f"{match.group(1)}.attn.qkv.{match.group(3)}", {})[match.group(2)] = value
            continue
        out[key] = value
    for key, parts in qkv.items():
        out[key] = torch.cat([parts["q"], parts["k"], parts["v"]])
    out["layers.0.blocks.0.attn.relative_position_index"] = torch.zeros(4, 4, dtype=torch.long)
    return out


def test_official_swin_backbone_weights_load() -> None:
    torch.manual_seed(0)
    config = RLIPv2Config.tiny("parsed", backbone="swin_tiny", swin_config=SWIN_TINY_TEST)
    source = build_model(config).eval()
    official = {k: v for k, v in official_state_dict(source).items() if not k.startswith("backbone.")}
    body = {k[len("backbone.body."):]: v for k, v in source.state_dict().items() if k.startswith("backbone.body.")}
    official.update({f"backbone.0.body.{k}": v for k, v in _original_swin_names(body).items()})
    torch.manual_seed(1)
    target = build_model(config).eval()
    converted, report = convert_state_dict(official, target, config)
    assert report.ok, report.summary()
    target.load_state_dict(converted, strict=False)
    with torch.no_grad():
        want = source(make_images(), (ENTITIES, RELATIONS))
        got = target(make_images(), (ENTITIES, RELATIONS))
    torch.testing.assert_close(got["pred_obj_boxes"], want["pred_obj_boxes"])
    torch.testing.assert_close(got["pred_verb_logits"], want["pred_verb_logits"])


def test_command_line_conversion_writes_a_loadable_checkpoint(tmp_path: Path) -> None:
    import json

    from model.checkpoint import load_checkpoint
    from model.convert_official import main
    from model.labels import COCO_CLASSES

    torch.manual_seed(0)
    config = RLIPv2Config.tiny("rtagger")
    source = build_model(config).eval()
    torch.save({"model": official_state_dict(source), "args": argparse.Namespace(verb_tagger=True)},
               tmp_path / "official.pth")
    (tmp_path / "config.json").write_text(json.dumps(config.to_dict()))
    code = main([str(tmp_path / "official.pth"), str(tmp_path / "ours.pt"), "--config-json",
                 str(tmp_path / "config.json")])
    assert code == 0
    model, metadata = load_checkpoint(tmp_path / "ours.pt")
    assert metadata["entity_labels"] == list(COCO_CLASSES)
    torch.testing.assert_close(model.coord_proj.weight, source.coord_proj.weight)


def test_official_roberta_text_encoder_builds_offline_and_noise_scales_carry() -> None:
    from model.convert_official import shipped_text_config
    from model.text_encoder import build_text_model

    args = {"verb_tagger": True, "text_encoder_type": "roberta-base", "label_noise_scale": 0.3,
            "box_noise_scale": 0.6}
    config = config_from_official_args(args)
    # The official tagger script's denoising, not our defaults (0.2 / 0.4).
    assert (config.label_noise_scale, config.box_noise_scale) == (0.3, 0.6)
    assert config_from_official_args({"verb_tagger": True}).label_noise_scale == 0.2
    assert config.text_encoder == "roberta-base" and config.text_pooling == "pooler"
    assert config.text_encoder_config is not None and config.text_encoder_config["hidden_size"] == 768
    large = shipped_text_config("FacebookAI/roberta-large")
    assert large is not None and (large["hidden_size"], large["num_hidden_layers"]) == (1024, 24)
    assert shipped_text_config("bert-base-uncased") is None
    # Built from the shipped architecture alone (HF_HUB_OFFLINE is set for the tests): no download.
    text_model = build_text_model(config)
    assert type(text_model).__name__ == "RobertaModel" and len(text_model.encoder.layer) == 12
    assert sum(p.numel() for p in text_model.parameters()) > 120_000_000


def test_conversion_without_a_local_tokenizer_says_what_to_do(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from model.convert_official import main

    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf-home"))
    torch.save({"model": {}, "args": argparse.Namespace(verb_tagger=True, text_encoder_type="roberta-base")},
               tmp_path / "official.pth")
    with pytest.raises(SystemExit):
        main([str(tmp_path / "official.pth"), str(tmp_path / "ours.pt")])
    err = capsys.readouterr().err
    assert "'roberta-base' tokenizer is not available offline" in err and "--tokenizer DIR" in err
