"""Load official RLIPv2 / R-Tagger checkpoints into our modules.

Official checkpoints are ``{"model": state_dict, "args": Namespace, ...}``
saved by ``main.py`` (JacobYuan7/RLIPv2). Keys are renamed by the rules below,
every tensor is shape-checked against our module, and a
:class:`ConversionReport` lists what was loaded, what was deliberately
skipped (with the reason) and anything unmatched on either side.

    python -m model.convert_official official.pth ours.pt --variant rtagger

The official ``args`` (when present) fill the configuration: layer counts,
FFN width, fusion interval, gating, relation-query type, backbone, the
R-Tagger's denoising noise scales. RoBERTa-base/large are built from the
configs shipped in ``roberta_configs.json`` (their weights are in the
checkpoint); only the tokenizer must exist locally, and the converted
checkpoint embeds it.
"""

from __future__ import annotations

import argparse
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor, nn

from .backbone import swin_original_to_hf
from .configuration import RLIPv2Config
from .labels import COCO_CLASSES
from .text_check import warn_if_labels_collapse

# Official gating names -> (our gate kind, tanh).
OFFICIAL_GATES: dict[str, tuple[str, bool]] = {
    "VXAc": ("scalar", False),
    "Vtanh": ("scalar", True),
    "GLIP": ("vector", False),
    "Etanh": ("vector", True),
    "SDFXAc": ("se", False),
    "SDFtanh": ("se", True),
    "XGating": ("none", False),
}
OFFICIAL_RELATION_QUERY = {"vanilla": "vanilla", "MBF": "mbf", "vanilla_MBF": "vanilla_mbf"}

_ENC = r"transformer\.(?:ho_)?encoder\."
# (official pattern, our template). ``{0}``, ``{1}`` are the captured groups.
RENAMES: list[tuple[str, str]] = [
    (r"^backbone\.0\.body\.(.+)$", "backbone.body.{0}"),
    (r"^backbone\.body\.(model\..+)$", "backbone.body.{0}"),
    (r"^input_proj\.(.+)$", "input_proj.{0}"),
    (r"^transformer\.level_embed$", "level_embed"),
    (r"^transformer\.text_encoder\.(.+)$", "text_encoder.model.{0}"),
    (r"^transformer\.resizer\.(.+)$", "text_resizer.{0}"),
    (_ENC + r"layers\.(\d+)\.(.+)$", "encoder.layers.{0}.{1}"),
    (_ENC + r"VLFuse_layers\.(\d+)\.b_attn\.(layer_norm_[vl]\..+)$", "encoder.fusion.{0}.{1}"),
    (_ENC + r"VLFuse_layers\.(\d+)\.b_attn\.attn\.(.+)$", "encoder.fusion.{0}.attn.{1}"),
    (_ENC + r"VLFuse_layers\.(\d+)\.b_attn\.gamma_([vl])$", "encoder.fusion.{0}.gate_{1}.alpha"),
    (_ENC + r"VLFuse_layers\.(\d+)\.b_attn\.gamma_([vl])_down\.(.+)$", "encoder.fusion.{0}.gate_{1}.down.{2}"),
    (_ENC + r"VLFuse_layers\.(\d+)\.b_attn\.gamma_([vl])_up\.(.+)$", "encoder.fusion.{0}.gate_{1}.up.{2}"),
    (_ENC + r"roberta_layers\.(\d+)\.(.+)$", "encoder.language_layers.{0}.layer.{1}"),
    (r"^transformer\.reference_points_(sub|obj)\.(.+)$", "reference_points_{0}.{1}"),
    (r"^transformer\.ho_decoder\.((?:layers|query_scale|ref_point_head)\..+)$", "entity_decoder.{0}"),
    (r"^transformer\.verb_decoder\.((?:layers|query_scale|ref_point_head)\..+)$", "relation_decoder.{0}"),
    (r"^(sub|obj)_bbox_embed\.(\d+)\.(.+)$", "{0}_bbox_embed.{1}.{2}"),
    (r"^(projection_text\..+|bias_obj_a|bias_pred_a)$", "classifier.{0}"),
    (r"^(query_embed|tgt_embed|verb_tgt_embed|refpoint_embed)\.weight$", "{0}.weight"),
    (r"^transformer\.(verb_tgt_generator\..+|verb_query_embed\.weight|coord_proj\..+|verb_tgt\.weight)$", "{0}"),
]

# Official keys we leave out on purpose, with the reason shown in the report.
IGNORED: list[tuple[str, str]] = [
    (r"^transformer\.(?:ho|verb)_decoder\.(?:sub|obj)_bbox_embed\.", "alias of the top-level box heads (checked equal)"),
    (r"\.position_ids$", "buffer recomputed by transformers"),
    (r"\.num_batches_tracked$", "frozen BatchNorm has no counter"),
    (r"\.relative_position_index$", "Swin buffer recomputed at construction"),
]


@dataclass
class ConversionReport:
    loaded: list[str] = field(default_factory=list)
    ignored: dict[str, str] = field(default_factory=dict)
    unmatched_official: list[str] = field(default_factory=list)
    missing_ours: list[str] = field(default_factory=list)
    shape_mismatches: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.unmatched_official or self.missing_ours or self.shape_mismatches)

    def summary(self) -> str:
        lines = [f"loaded {len(self.loaded)} tensors, ignored {len(self.ignored)}"]
        for title, items in (("unmatched official keys", self.unmatched_official),
                             ("our keys with no official tensor", self.missing_ours)):
            if items:
                lines.append(f"{title} ({len(items)}):")
                lines.extend(f"  {k}" for k in items)
        if self.shape_mismatches:
            lines.append(f"shape mismatches ({len(self.shape_mismatches)}):")
            lines.extend(f"  {k}: official {o} vs ours {u}" for k, o, u in self.shape_mismatches)
        reasons: dict[str, int] = {}
        for reason in self.ignored.values():
            reasons[reason] = reasons.get(reason, 0) + 1
        lines.extend(f"ignored ({n}): {reason}" for reason, n in sorted(reasons.items()))
        return "\n".join(lines)


def rename_key(key: str) -> str | None:
    for pattern, template in RENAMES:
        match = re.match(pattern, key)
        if match:
            return template.format(*match.groups())
    return None


def _ignore_reason(key: str, config: RLIPv2Config) -> str | None:
    for pattern, reason in IGNORED:
        if re.search(pattern, key):
            return reason
    if config.variant == "rtagger" and key == "query_embed.weight":
        return "detection queries are unused by the R-Tagger (queries come from given boxes)"
    if config.relation_query == "vanilla" and key.startswith("transformer.verb_tgt_generator."):
        # Official ParSeDA always builds this module, whatever the relation-query type.
        return "multi-branch fusion unused by the 'vanilla' relation query"
    if config.gate != "se" and re.search(r"gamma_[vl]_(down|up)\.", key):
        return "squeeze-excitation gate weights unused by the configured gate"
    if config.gate in ("se", "none") and re.search(r"b_attn\.gamma_[vl]$", key):
        return "layer-scale vector unused by the configured gate"
    return None


def _adapt(key: str, value: Tensor, target: Tensor, config: RLIPv2Config) -> Tensor | None:
    """The official tensor reshaped to ours where the layouts differ by design, else None."""
    if value.shape == target.shape:
        return value
    # The official scalar gate (VXAc/Vtanh) keeps a full vector and reads element 0.
    if key.endswith(".alpha") and config.gate == "scalar" and target.numel() == 1 and value.dim() == 1:
        return value[:1].clone()
    return None


def convert_state_dict(official: dict[str, Tensor], model: nn.Module,
                       config: RLIPv2Config) -> tuple[dict[str, Tensor], ConversionReport]:
    """Our state dict built from an official one, plus the report. ``model`` gives the target shapes."""
    ours = model.state_dict()
    report = ConversionReport()
    converted: dict[str, Tensor] = {}
    if config.backbone.startswith("swin"):
        official = _swin_to_ours(official)
    for key, value in official.items():
        reason = _ignore_reason(key, config)
        if reason is not None:
            report.ignored[key] = reason
            _check_alias(key, value, official)
            continue
        new_key = rename_key(key)
        if new_key is None or new_key not in ours:
            report.unmatched_official.append(key)
            continue
        adapted = _adapt(new_key, value, ours[new_key], config)
        if adapted is None:
            report.shape_mismatches.append((key, tuple(value.shape), tuple(ours[new_key].shape)))
            continue
        converted[new_key] = adapted.to(ours[new_key].dtype)
        report.loaded.append(key)
    report.missing_ours = sorted(k for k in ours if k not in converted and not _recomputed_buffer(k))
    return converted, report


def _swin_to_ours(official: dict[str, Tensor]) -> dict[str, Tensor]:
    """Official Swin bodies use the original Swin names; map them (splitting ``qkv``) up front."""
    prefix = "backbone.0.body."
    body = {k[len(prefix):]: v for k, v in official.items() if k.startswith(prefix)}
    rest = {k: v for k, v in official.items() if not k.startswith(prefix)}
    return {**{f"backbone.body.{k}": v for k, v in swin_original_to_hf(body).items()}, **rest}


def _recomputed_buffer(key: str) -> bool:
    return key.endswith(("position_ids", "relative_position_index", "token_type_ids"))


def _check_alias(key: str, value: Tensor, official: dict[str, Tensor]) -> None:
    match = re.match(r"^transformer\.(ho|verb)_decoder\.(sub|obj)_bbox_embed\.(\d+)\.(.+)$", key)
    if not match:
        return
    decoder, role, index, rest = match.groups()
    num_layers = 1 + max(int(m.group(1)) for k in official
                         if (m := re.match(r"^transformer\.ho_decoder\.layers\.(\d+)\.", k)))
    top = f"{role}_bbox_embed.{int(index) + (num_layers if decoder == 'verb' else 0)}.{rest}"
    if top in official and not torch.equal(official[top], value):
        raise ValueError(f"official checkpoint is inconsistent: {key} differs from {top}")


def config_from_official_args(args: Any, **overrides: Any) -> RLIPv2Config:
    """Our configuration for an official run's ``args`` (an argparse Namespace or dict)."""
    a = vars(args) if not isinstance(args, dict) else dict(args)
    if a.get("verb_tagger"):
        variant = "rtagger"
    elif a.get("RLIP_ParSeDA_v2"):
        variant = "parseda"
    else:
        variant = "parsed"
    enc_layers = int(a.get("enc_layers", 6))
    interval = int(a.get("fusion_interval", 2))
    gate, tanh = OFFICIAL_GATES.get(str(a.get("gating_mechanism", "GLIP")), ("vector", False))
    settings: dict[str, Any] = {
        "variant": variant,
        "backbone": {"swin_tiny": "swin_tiny", "swin_large": "swin_large"}.get(str(a.get("backbone")), "resnet50"),
        "hidden_dim": int(a.get("hidden_dim", 256)),
        "nheads": int(a.get("nheads", 8)),
        "dim_feedforward": int(a.get("dim_feedforward", 1024)),
        "dropout": float(a.get("dropout", 0.1)),
        "num_feature_levels": int(a.get("num_feature_levels", 4)),
        "enc_n_points": int(a.get("enc_n_points", 4)),
        "dec_n_points": int(a.get("dec_n_points", 4)),
        "dec_layers": int(a.get("dec_layers", 3)),
        "num_queries": int(a.get("num_queries", 200)) // 2,
        "text_encoder": str(a.get("text_encoder_type", "roberta-base")),
        "alif_blocks": enc_layers // interval,
        "alif_vision_layers": interval,
        "gate": gate,
        "gate_tanh": tanh,
        "fuse_last_level_only": bool(a.get("fusion_last_vis", True)),
        "per_stage_text": bool(a.get("lang_aux_loss", True)),
        "relation_query": OFFICIAL_RELATION_QUERY.get(str(a.get("verb_query_tgt_type", "vanilla")), "vanilla"),
    }
    # DN-DETR-style denoising of the R-Tagger: the official tagger script sets 0.3 / 0.6.
    for name in ("label_noise_scale", "box_noise_scale"):
        if a.get(name) is not None:
            settings[name] = float(a[name])
    text_config = shipped_text_config(settings["text_encoder"])
    if text_config is not None:
        # Architecture only: the checkpoint carries the text encoder's weights, so
        # nothing needs to be downloaded to build it.
        settings["text_encoder_config"] = text_config
    if variant == "rtagger":
        settings["relation_query"] = "vanilla"
    return RLIPv2Config(**{**settings, **overrides})


def shipped_text_config(name: str) -> dict[str, Any] | None:
    """The Hugging Face config of ``roberta-base`` / ``roberta-large`` as shipped with relfactory, else None."""
    shipped = json.loads((Path(__file__).with_name("roberta_configs.json")).read_text())
    key = name.rstrip("/").rsplit("/", 1)[-1]  # "FacebookAI/roberta-base" or a local ".../roberta-base" folder
    config = shipped.get(key)
    return dict(config) if config is not None else None


def offline_tokenizer(source: str) -> Any:
    """The tokenizer ``source`` names, from local files only (a folder, or the Hugging Face cache).

    The converted checkpoint embeds it, so this is the only time it is needed.
    """
    from transformers import AutoTokenizer

    from .configuration import CHAR_TOKENIZER
    from .text_encoder import build_char_tokenizer, resolve_text_source

    if source == CHAR_TOKENIZER:
        return build_char_tokenizer()
    try:
        return AutoTokenizer.from_pretrained(resolve_text_source(source), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ValueError(
            f"the {source!r} tokenizer is not available offline ({type(exc).__name__}); fetch it once on a "
            f"connected machine (huggingface-cli download {source} tokenizer.json vocab.json merges.txt "
            "tokenizer_config.json) or pass --tokenizer DIR, a folder holding it") from None


def read_official_checkpoint(path: str | Path) -> tuple[dict[str, Tensor], Any]:
    """(state dict, args or None). Only argparse.Namespace is allowed beyond tensors."""
    # Scoped allow-list: argparse.Namespace is an inert attribute bag.
    with torch.serialization.safe_globals([argparse.Namespace]):
        payload = torch.load(Path(path), map_location="cpu", weights_only=True)
    if isinstance(payload, dict) and "model" in payload:
        return payload["model"], payload.get("args")
    if isinstance(payload, dict) and all(isinstance(v, Tensor) for v in payload.values()):
        return payload, None
    raise ValueError(f"{path} does not look like an RLIPv2 checkpoint (no 'model' state dict)")


def load_official(path: str | Path, config: RLIPv2Config | None = None, strict: bool = True,
                  text_model: nn.Module | None = None, build: Callable[..., nn.Module] | None = None,
                  tokenizer: Any = None) -> tuple[nn.Module, ConversionReport]:
    """Build our model for an official checkpoint and load it; raises on mismatch when ``strict``."""
    from .parsed import build_model

    state, args = read_official_checkpoint(path)
    if config is None:
        if args is None:
            raise ValueError(f"{path} carries no args: pass the RLIPv2Config explicitly")
        config = config_from_official_args(args)
    kwargs: dict[str, Any] = {"text_model": text_model}
    if tokenizer is not None:
        kwargs["tokenizer"] = tokenizer
    if build is None:
        kwargs["check_labels"] = False  # random weights until the official ones are loaded
    model = (build or build_model)(config, **kwargs)
    converted, report = convert_state_dict(state, model, config)
    if strict and not report.ok:
        raise ValueError(f"official checkpoint {path} does not fit:\n{report.summary()}")
    model.load_state_dict(converted, strict=False)
    warn_if_labels_collapse(model.text_encoder, where=f"official checkpoint {Path(path).name}")
    return model.eval(), report


def main(argv: list[str] | None = None) -> int:
    from .checkpoint import save_checkpoint

    parser = argparse.ArgumentParser(description="Convert an official RLIPv2 / R-Tagger checkpoint.")
    parser.add_argument("official", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("--variant", choices=("parsed", "parseda", "rtagger"), default=None,
                        help="override the variant read from the checkpoint's args")
    parser.add_argument("--config-json", type=Path, default=None,
                        help="an RLIPv2Config as JSON, for checkpoints without args")
    parser.add_argument("--entity-labels", type=Path, default=None,
                        help="JSON list of entity class names; default: the 80 COCO classes for an R-Tagger")
    parser.add_argument("--tokenizer", default=None,
                        help="a local tokenizer folder; default: the text encoder's, from the Hugging Face cache")
    parser.add_argument("--no-strict", action="store_true", help="save even with unmatched keys")
    ns = parser.parse_args(argv)

    if ns.config_json is not None:
        config = RLIPv2Config.from_dict(json.loads(ns.config_json.read_text()))
    else:
        _, args = read_official_checkpoint(ns.official)
        if args is None:
            parser.error(f"{ns.official} carries no args: give --config-json")
        config = config_from_official_args(args, **({"variant": ns.variant} if ns.variant else {}))
    try:
        tokenizer = offline_tokenizer(ns.tokenizer or config.tokenizer or config.text_encoder)
    except ValueError as exc:
        parser.error(str(exc))
    if ns.tokenizer is not None:
        config = config.replace(tokenizer=ns.tokenizer)
    model, report = load_official(ns.official, config, strict=not ns.no_strict, tokenizer=tokenizer)
    print(report.summary())
    metadata: dict[str, Any] = {"converted_from": str(ns.official)}
    if ns.entity_labels is not None:
        metadata["entity_labels"] = json.loads(ns.entity_labels.read_text())
    elif model.config.variant == "rtagger":
        metadata["entity_labels"] = list(COCO_CLASSES)
    save_checkpoint(ns.output, model, metadata)
    print(f"wrote {ns.output}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
