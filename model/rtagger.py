"""The Relation Tagger: RLIPv2-ParSeD whose entity queries are given boxes.

Instead of learned detection queries, every subject/object query is built
from a given box and its class label (see :mod:`model.denoising`), so the
network only has to say which of the image's relation texts hold for each
given pair. ``targets`` carry the pairs, per image: ``sub_boxes``,
``obj_boxes`` (normalised cx, cy, w, h), ``sub_labels``, ``obj_labels``
(indices into that image's entity label list) and, for training,
``verb_labels`` (multi-hot over its relation texts).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from .base import EncodedBatch, EntityQueries, RLIPv2Base
from .configuration import RLIPv2Config
from .denoising import PairSlots, build_tagger_queries


class RTagger(RLIPv2Base):
    def __init__(self, config: RLIPv2Config, text_model: nn.Module | None = None, tokenizer: Any = None) -> None:
        if config.variant != "rtagger":
            raise ValueError(f"RTagger needs an 'rtagger' config, got {config.variant!r}")
        self.noise_generator: torch.Generator | None = None
        super().__init__(config, text_model, tokenizer)

    def _build_queries(self) -> None:
        d = self.config.hidden_dim
        self.coord_proj = nn.Linear(4, d)
        self.verb_tgt = nn.Embedding(2 * self.num_queries, d)
        self.reference_points_sub = nn.Linear(d, 2)
        self.reference_points_obj = nn.Linear(d, 2)
        for linear in (self.reference_points_sub, self.reference_points_obj):
            nn.init.xavier_uniform_(linear.weight, gain=1.0)
            nn.init.constant_(linear.bias, 0.0)

    def label_embeddings(self, enc: EncodedBatch) -> Tensor:
        """Entity label tokens after the ALIF stage of the last decoder layer (B, E, C).

        Detached, as in the official tagger: the queries read the label
        meaning but do not train the language side through this path.
        """
        stage = enc.text[self.config.stage_for_decoder_layer(self.config.dec_layers - 1)]
        return stage[:, : enc.labels.max_entities].detach()

    def entity_queries(self, enc: EncodedBatch, targets: list[dict[str, Tensor]] | None) -> EntityQueries:
        if targets is None:
            raise ValueError("the R-Tagger needs the given pairs in `targets`")
        d, n, batch = self.config.hidden_dim, self.num_queries, len(enc)
        device = enc.memory.memory.device
        slots = PairSlots.from_targets(targets, n, device)
        # The no-object token is never a real class to flip to.
        real_labels = torch.as_tensor([k - 1 for k in enc.labels.num_entities], device=device)
        queries, key_padding, attn_mask = build_tagger_queries(
            self.label_embeddings(enc), slots, self.coord_proj, self.training, self.config.box_noise_scale,
            self.config.label_noise_scale, real_labels, self.noise_generator,
        )
        pos, tgt = queries[..., :d], queries[..., d:]
        return EntityQueries(
            tgt=tgt,
            pos=pos,
            sub_ref=self.reference_points_sub(pos[:, :n]).sigmoid(),
            obj_ref=self.reference_points_obj(pos[:, n:]).sigmoid(),
            verb_tgt=self.verb_tgt.weight[None].expand(batch, -1, -1),
            key_padding_mask=key_padding,
            attn_mask=attn_mask,
        )
