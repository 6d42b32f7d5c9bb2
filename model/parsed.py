"""RLIPv2-ParSeD (learned queries) and RLIPv2-ParSeDA (DAB anchor queries)."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from .base import EncodedBatch, EntityQueries, RLIPv2Base
from .configuration import RLIPv2Config
from .text_check import warn_if_labels_collapse


class RLIPv2ParSeD(RLIPv2Base):
    """Parallel entity detection + sequential relation inference on Deformable DETR.

    Each of the 2 N_Q entity queries has a learned (position, content,
    relation-content) triple (official ``query_embed`` of width 3C); subject
    and object reference points come from the positions.
    """

    def __init__(self, config: RLIPv2Config, text_model: nn.Module | None = None, tokenizer: Any = None) -> None:
        if config.variant != "parsed":
            raise ValueError(f"RLIPv2ParSeD needs a 'parsed' config, got {config.variant!r}")
        super().__init__(config, text_model, tokenizer)

    def _build_queries(self) -> None:
        d = self.config.hidden_dim
        self.query_embed = nn.Embedding(2 * self.num_queries, 3 * d)
        self.reference_points_sub = nn.Linear(d, 2)
        self.reference_points_obj = nn.Linear(d, 2)
        for linear in (self.reference_points_sub, self.reference_points_obj):
            nn.init.xavier_uniform_(linear.weight, gain=1.0)
            nn.init.constant_(linear.bias, 0.0)

    def entity_queries(self, enc: EncodedBatch, targets: list[dict[str, Tensor]] | None) -> EntityQueries:
        batch, n = len(enc), self.num_queries
        pos, tgt, verb_tgt = self.query_embed.weight.split(self.config.hidden_dim, dim=1)
        pos = pos[None].expand(batch, -1, -1)
        return EntityQueries(
            tgt=tgt[None].expand(batch, -1, -1),
            pos=pos,
            sub_ref=self.reference_points_sub(pos[:, :n]).sigmoid(),
            obj_ref=self.reference_points_obj(pos[:, n:]).sigmoid(),
            verb_tgt=verb_tgt[None].expand(batch, -1, -1),
        )


class RLIPv2ParSeDA(RLIPv2Base):
    """ParSeD with DAB-DETR 4-d anchor boxes as queries (``tgt_embed``, ``verb_tgt_embed``, ``refpoint_embed``)."""

    def __init__(self, config: RLIPv2Config, text_model: nn.Module | None = None, tokenizer: Any = None) -> None:
        if config.variant != "parseda":
            raise ValueError(f"RLIPv2ParSeDA needs a 'parseda' config, got {config.variant!r}")
        super().__init__(config, text_model, tokenizer)

    def _build_queries(self) -> None:
        d = self.config.hidden_dim
        self.tgt_embed = nn.Embedding(2 * self.num_queries, d)
        self.verb_tgt_embed = nn.Embedding(2 * self.num_queries, d)
        self.refpoint_embed = nn.Embedding(2 * self.num_queries, 4)

    def entity_queries(self, enc: EncodedBatch, targets: list[dict[str, Tensor]] | None) -> EntityQueries:
        batch, n = len(enc), self.num_queries
        anchors = self.refpoint_embed.weight.sigmoid()[None].expand(batch, -1, -1)
        return EntityQueries(
            tgt=self.tgt_embed.weight[None].expand(batch, -1, -1),
            pos=None,
            sub_ref=anchors[:, :n],
            obj_ref=anchors[:, n:],
            verb_tgt=self.verb_tgt_embed.weight[None].expand(batch, -1, -1),
        )


def build_model(config: RLIPv2Config, text_model: nn.Module | None = None, tokenizer: Any = None, *,
                check_labels: bool = True) -> RLIPv2Base:
    """The module class that matches ``config.variant``.

    ``check_labels`` warns when the text encoder gives distinct label texts
    near-identical vectors (:mod:`model.text_check`); a caller about to load
    other weights into the module checks after loading instead.
    """
    model: RLIPv2Base
    if config.variant == "parsed":
        model = RLIPv2ParSeD(config, text_model, tokenizer)
    elif config.variant == "parseda":
        model = RLIPv2ParSeDA(config, text_model, tokenizer)
    else:
        from .rtagger import RTagger

        model = RTagger(config, text_model, tokenizer)
    if check_labels:
        warn_if_labels_collapse(model.text_encoder)
    return model


__all__ = ["RLIPv2ParSeD", "RLIPv2ParSeDA", "build_model"]
