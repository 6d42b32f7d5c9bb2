"""The network shared by RLIPv2-ParSeD, RLIPv2-ParSeDA and the R-Tagger.

``encode`` runs backbone, ALIF encoder and text encoder once per image and
returns an :class:`EncodedBatch`; ``decode`` turns it plus queries into
DETR-style outputs. Splitting the two lets the R-Tagger encode an image once
and decode many chunks of pairs against it.

Output dict (per decoder layer in ``aux_outputs``, last layer at top level):
``pred_sub_logits`` / ``pred_obj_logits`` (B, N_Q, E) over the image's entity
labels (its last valid slot is the no-object token), ``pred_verb_logits``
(B, N_Q, R) over its relation texts, ``pred_sub_boxes`` / ``pred_obj_boxes``
(B, N_Q, 4) normalised cx, cy, w, h; plus ``entity_pad_mask``,
``relation_pad_mask`` and ``no_object_index`` for the losses.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .alif import FusionBlock
from .backbone import Backbone
from .configuration import RLIPv2Config
from .decoder import DeformableDecoderLayer, Memory, PairDecoder, _refine
from .deformable import MSDeformAttn
from .encoder import ALIFEncoder, DeformableEncoderLayer
from .heads import MLP, FeatureResizer, MultiBranchFusion, TextSimilarityClassifier
from .nested_tensor import NestedTensor, as_nested_tensor
from .position import PositionEmbeddingSine
from .text_encoder import LabelBatch, LabelTextEncoder

Labels = LabelBatch | tuple[Sequence[Sequence[str]], Sequence[Sequence[str]]]


@dataclass
class EncodedBatch:
    """Encoder output for a batch of images, reusable across decoder passes."""

    memory: Memory
    text: list[Tensor]  # per ALIF stage, (B, E + R, C) after the resizer
    labels: LabelBatch

    def index_select(self, index: Tensor) -> "EncodedBatch":
        """Rows ``index`` of the batch (repeats allowed): one image serving several chunks."""
        mem = self.memory
        return EncodedBatch(
            Memory(mem.memory.index_select(0, index), mem.pad_mask.index_select(0, index), mem.spatial_shapes,
                   mem.level_start_index, mem.valid_ratios.index_select(0, index)),
            [t.index_select(0, index) for t in self.text],
            self.labels.index_select(index),
        )

    def __len__(self) -> int:
        return self.memory.memory.shape[0]


@dataclass
class EntityQueries:
    tgt: Tensor  # (B, 2N, C) content
    pos: Tensor | None  # (B, 2N, C) position; None for DAB (computed from anchors)
    sub_ref: Tensor  # (B, N, 2|4)
    obj_ref: Tensor
    verb_tgt: Tensor  # (B, 2N, C): the two halves are summed into N relation targets
    key_padding_mask: Tensor | None = None  # (B, 2N), True = empty slot
    attn_mask: Tensor | None = None  # (B, 2N, 2N), True = may not attend


class RLIPv2Base(nn.Module, ABC):
    def __init__(self, config: RLIPv2Config, text_model: nn.Module | None = None, tokenizer: Any = None) -> None:
        super().__init__()
        self.config = config
        d = config.hidden_dim
        self.num_queries = config.num_queries

        self.backbone = Backbone(config.backbone, config.resnet_depths, config.resnet_width, config.swin_config)
        self.position = PositionEmbeddingSine(d // 2)
        self.input_proj = nn.ModuleList(self._input_projections())
        self.level_embed = nn.Parameter(torch.empty(config.num_feature_levels, d))

        self.text_encoder = LabelTextEncoder(config, text_model, tokenizer)
        text_dim = self.text_encoder.hidden_size
        self.text_resizer = FeatureResizer(text_dim, d, dropout=0.1)

        def vision_layer() -> DeformableEncoderLayer:
            return DeformableEncoderLayer(d, config.dim_feedforward, config.dropout, config.num_feature_levels,
                                          config.nheads, config.enc_n_points)

        fusion = [FusionBlock(d, text_dim, config.fusion_embed_dim, config.fusion_heads, config.fusion_dropout,
                              config.gate, config.gate_init, config.gate_tanh, config.gate_se_reduction)
                  for _ in range(config.alif_blocks)]
        language = [self.text_encoder.new_language_layer() for _ in range(config.alif_blocks)]
        self.encoder = ALIFEncoder([vision_layer() for _ in range(config.enc_layers)], fusion, language,
                                   config.fuse_last_level_only)

        def decoder_layer() -> DeformableDecoderLayer:
            return DeformableDecoderLayer(d, config.dim_feedforward, config.dropout, config.num_feature_levels,
                                          config.nheads, config.dec_n_points)

        self.entity_decoder = PairDecoder(decoder_layer, config.dec_layers, parallel=True, dab=config.uses_dab,
                                          d_model=d)
        self.relation_decoder = PairDecoder(decoder_layer, config.dec_layers, parallel=False, dab=config.uses_dab,
                                            d_model=d)
        # Box heads 0..L-1 refine and predict entity boxes; L..2L-1 refine the
        # relation decoder's references (official ``num_pred * 2`` clones).
        self.sub_bbox_embed = nn.ModuleList(MLP(d, d, 4, 3) for _ in range(2 * config.dec_layers))
        self.obj_bbox_embed = nn.ModuleList(MLP(d, d, 4, 3) for _ in range(2 * config.dec_layers))
        self.classifier = TextSimilarityClassifier(d)
        if config.relation_query in ("mbf", "vanilla_mbf"):
            self.verb_tgt_generator = MultiBranchFusion(d, d, d, config.mbf_cardinality)
            if not config.uses_dab:
                self.verb_query_embed = nn.Embedding(config.num_queries, d)

        self._build_queries()
        self._reset_parameters()

    # ------------------------------------------------------------------ build
    def _input_projections(self) -> list[nn.Module]:
        d, config = self.config.hidden_dim, self.config
        # 32 groups as in the official model; small test widths keep 4 channels per group.
        groups = min(32, d // 4)
        layers: list[nn.Module] = []
        channels = self.backbone.num_channels
        # Fewer levels than the trunk gives: keep the coarsest ones (official
        # single-level models read layer4 only).
        for in_channels in channels[-config.num_feature_levels :]:
            layers.append(nn.Sequential(nn.Conv2d(in_channels, d, 1), nn.GroupNorm(groups, d)))
        in_channels = channels[-1]
        for _ in range(config.num_feature_levels - len(channels)):
            layers.append(nn.Sequential(nn.Conv2d(in_channels, d, 3, stride=2, padding=1), nn.GroupNorm(groups, d)))
            in_channels = d
        return layers

    @abstractmethod
    def _build_queries(self) -> None:
        """Create the variant's query parameters (learned, anchors, or box projections)."""

    def _reset_parameters(self) -> None:
        # Deformable DETR: Xavier for every matrix of the transformer, then the
        # deformable-attention init, zero last box layers, -2 size bias.
        for module in (self.encoder.layers, self.encoder.fusion, self.entity_decoder, self.relation_decoder):
            for p in module.parameters():
                if p.dim() > 1:
                    nn.init.xavier_uniform_(p)
        for m in self.modules():
            if isinstance(m, MSDeformAttn):
                m.reset_parameters()
        nn.init.normal_(self.level_embed)
        for proj in self.input_proj:
            nn.init.xavier_uniform_(proj[0].weight, gain=1)
            nn.init.constant_(proj[0].bias, 0)
        for heads in (self.sub_bbox_embed, self.obj_bbox_embed):
            for head in heads:
                nn.init.constant_(head.layers[-1].weight, 0)
                nn.init.constant_(head.layers[-1].bias, 0)
            nn.init.constant_(heads[0].layers[-1].bias[2:], -2.0)
        if self.config.backbone_weights:
            self.backbone.load_pretrained(self.config.backbone_weights)

    # ----------------------------------------------------------------- encode
    def encode_labels(self, entity_texts: Sequence[Sequence[str]], relation_texts: Sequence[Sequence[str]]) -> LabelBatch:
        """Pool every phrase; each image's entity list gets the no-object token appended last."""
        with_no_object = [list(group) + [self.config.no_object_text] for group in entity_texts]
        return self.text_encoder.encode_labels(with_no_object, relation_texts)

    def encode(self, images: NestedTensor | Tensor | Sequence[Tensor], labels: Labels) -> EncodedBatch:
        samples = as_nested_tensor(images)
        if not isinstance(labels, LabelBatch):
            labels = self.encode_labels(*labels)
        labels = labels.to(samples.tensors.device)
        if len(labels.num_entities) != len(samples):
            raise ValueError(f"{len(samples)} images but label sets for {len(labels.num_entities)}")

        features = self.backbone(samples.tensors, samples.mask)
        num_levels = self.config.num_feature_levels
        srcs, masks = [], []
        for level, (feature, mask) in enumerate(features[-num_levels:]):
            srcs.append(self.input_proj[level](feature))
            masks.append(mask)
        for level in range(len(srcs), num_levels):
            src = self.input_proj[level](features[-1][0] if level == len(features) else srcs[-1])
            masks.append(F.interpolate(samples.mask[None].float(), size=src.shape[-2:]).to(torch.bool)[0])
            srcs.append(src)

        flat_src, flat_mask, flat_pos, shapes = [], [], [], []
        for level, (src, mask) in enumerate(zip(srcs, masks)):
            pos = self.position(mask).to(src.dtype)
            shapes.append(src.shape[-2:])
            flat_src.append(src.flatten(2).transpose(1, 2))
            flat_mask.append(mask.flatten(1))
            flat_pos.append(pos.flatten(2).transpose(1, 2) + self.level_embed[level].view(1, 1, -1))
        spatial_shapes = torch.as_tensor([tuple(s) for s in shapes], dtype=torch.long, device=samples.tensors.device)
        level_start_index = torch.cat((spatial_shapes.new_zeros((1,)), spatial_shapes.prod(1).cumsum(0)[:-1]))
        valid_ratios = torch.stack([_valid_ratio(m) for m in masks], 1)
        src, pad, pos = torch.cat(flat_src, 1), torch.cat(flat_mask, 1), torch.cat(flat_pos, 1)

        memory, stages = self.encoder(src, pos, pad, spatial_shapes, level_start_index, valid_ratios,
                                      labels.features, labels.pad_mask)
        text = [self.text_resizer(stage) for stage in stages]
        return EncodedBatch(Memory(memory, pad, spatial_shapes, level_start_index, valid_ratios), text, labels)

    # ----------------------------------------------------------------- decode
    @abstractmethod
    def entity_queries(self, enc: EncodedBatch, targets: list[dict[str, Tensor]] | None) -> EntityQueries:
        """The 2 N_Q subject/object queries of this variant for a batch."""

    def decode(self, enc: EncodedBatch, targets: list[dict[str, Tensor]] | None = None) -> dict[str, Any]:
        config, n = self.config, self.num_queries
        layers = config.dec_layers
        queries = self.entity_queries(enc, targets)
        hs, refs = self.entity_decoder(queries.tgt, queries.sub_ref, queries.obj_ref, enc.memory, queries.pos,
                                       self.sub_bbox_embed[:layers], self.obj_bbox_embed[:layers],
                                       queries.key_padding_mask, queries.attn_mask)
        hs_sub, hs_obj = hs[:, :, :n], hs[:, :, n:]

        rel_tgt, rel_pos = self._relation_queries(hs_sub[-1], hs_obj[-1], queries.verb_tgt)
        rel_kpm = None if queries.key_padding_mask is None else queries.key_padding_mask[:, :n]
        last_sub, last_obj = refs[-1]
        hs_rel, _ = self.relation_decoder(rel_tgt, last_sub, last_obj, enc.memory, rel_pos,
                                          self.sub_bbox_embed[layers:], self.obj_bbox_embed[layers:], rel_kpm)

        labels = enc.labels
        entity_pad, relation_pad = labels.entity_mask, labels.relation_mask
        per_layer = []
        for layer in range(layers):
            sub_ref, obj_ref = (queries.sub_ref, queries.obj_ref) if layer == 0 else refs[layer - 1]
            text = self.classifier.project_text(enc.text[config.stage_for_decoder_layer(layer)])
            entity_text, relation_text = text[:, : labels.max_entities], text[:, labels.max_entities :]
            per_layer.append({
                "pred_sub_logits": self.classifier.entity_logits(hs_sub[layer], entity_text, entity_pad),
                "pred_obj_logits": self.classifier.entity_logits(hs_obj[layer], entity_text, entity_pad),
                "pred_verb_logits": self.classifier.relation_logits(hs_rel[layer], relation_text, relation_pad),
                "pred_sub_boxes": _refine(self.sub_bbox_embed[layer], hs_sub[layer], sub_ref),
                "pred_obj_boxes": _refine(self.obj_bbox_embed[layer], hs_obj[layer], obj_ref),
            })
        device = hs.device
        shared = {
            "entity_pad_mask": entity_pad,
            "relation_pad_mask": relation_pad,
            "no_object_index": torch.as_tensor([k - 1 for k in labels.num_entities], device=device),
        }
        out: dict[str, Any] = {**per_layer[-1], **shared}
        if config.aux_loss:
            out["aux_outputs"] = [{**p, **shared} for p in per_layer[:-1]]
        return out

    def _relation_queries(self, hs_sub: Tensor, hs_obj: Tensor, verb_tgt: Tensor) -> tuple[Tensor, Tensor | None]:
        n, kind = self.num_queries, self.config.relation_query
        merged_tgt = verb_tgt[:, :n] + verb_tgt[:, n:]
        if kind == "vanilla":
            tgt, pos = merged_tgt, hs_sub + hs_obj
        else:
            fused = self.verb_tgt_generator(hs_sub, hs_obj)
            tgt = fused if kind == "mbf" else fused + merged_tgt
            pos = None if self.config.uses_dab else self.verb_query_embed.weight[None].expand(hs_sub.shape[0], -1, -1)
        return tgt, (None if self.config.uses_dab else pos)

    def forward(self, images: NestedTensor | Tensor | Sequence[Tensor], labels: Labels,
                targets: list[dict[str, Tensor]] | None = None) -> dict[str, Any]:
        return self.decode(self.encode(images, labels), targets)


def _valid_ratio(mask: Tensor) -> Tensor:
    _, height, width = mask.shape
    valid_h = torch.sum(~mask[:, :, 0], 1)
    valid_w = torch.sum(~mask[:, 0, :], 1)
    return torch.stack([valid_w.float() / width, valid_h.float() / height], -1)
