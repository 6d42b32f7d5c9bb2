"""RCL as an auxiliary loss of RLIPv2 pre-training (``relfactory train --loss rcl``).

RLIPv2 scores each relation query against the batch's relation texts
(``pred_verb_logits``, from the model's own text encoder) with a sigmoid focal
loss: every text that is not the pair's label is an equally hard negative,
"holding" against "holds" included. The auxiliary term adds RelCLIP's
contrastive view on the same logits: for every matched query and each of its
relations, an InfoNCE over the batch's relation texts whose negatives come from
the semantic-aware dictionary (synonyms at similarity >= ε left out, the rest
weighted by similarity; :mod:`model.relclip.sampling`). The similarities are
the step's MiniLM similarities of the relation sequence (the ones Relation
Pseudo-Labels use). The pair's other labels, pseudo-labels included, are
never negatives.

This is RCL at the *unary* level: RLIPv2's text encoder embeds bare relation
texts, so the decoupled subject-predicate / predicate-object contrast of the
stand-alone classifier (:mod:`model.relclip.classifier`) is not available here.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from model.relclip.loss import weighted_info_nce
from model.relclip.sampling import SYNONYM_EPSILON, NegativeDictionary, build_negative_dictionary
from stages.train.labels import SoftRelationCriterion

RCL_LOSS = "loss_rcl"


def rcl_relation_term(logits: Tensor, targets: list[dict[str, Tensor]], indices: list[tuple[Tensor, Tensor]],
                      batch_idx: Tensor, query_idx: Tensor, similarity: Tensor | None,
                      epsilon: float = SYNONYM_EPSILON, max_negatives: int | None = None,
                      pad_mask: Tensor | None = None) -> Tensor:
    """Mean weighted InfoNCE over (matched query, labelled relation) of one decoder layer's relation logits.

    ``logits`` (B, Q, R) may be padded past the relation sequence; ``similarity``
    (R', R') covers its first R' texts (None: plain InfoNCE over the R texts);
    ``pad_mask`` (B, R) marks padding texts, which are never negatives.
    """
    width = similarity.shape[0] if similarity is not None else logits.shape[-1]
    matched = logits[batch_idx, query_idx][:, :width].float()
    rows = [F.pad(t["verb_labels"][j].float(), (0, max(0, width - t["verb_labels"].shape[1])))[:, :width]
            for t, (_, j) in zip(targets, indices)]
    if not rows or not matched.numel():
        return logits.sum() * 0.0
    labels = torch.cat(rows).to(matched.device)
    query, predicate = torch.nonzero(labels >= 1.0, as_tuple=True)  # hard labels; RPL's soft ones are < 1
    if not len(query):
        return logits.sum() * 0.0
    dictionary = (build_negative_dictionary(similarity, epsilon=epsilon, max_negatives=max_negatives)
                  if similarity is not None else NegativeDictionary.uniform(width))
    also_true = labels[query] > 0
    also_true[torch.arange(len(query)), predicate] = False
    if pad_mask is not None:
        also_true |= pad_mask[batch_idx][query][:, :width].to(also_true.device)
    return weighted_info_nce(matched[query], predicate, dictionary, also_true).mean()


class RCLCriterion(SoftRelationCriterion):
    """RLIPv2's training criterion plus ``weight`` × the RCL term (``loss_rcl``) on every decoder layer.

    Set :attr:`similarity` to the step's (R, R) relation-text similarities before each call.
    """

    def __init__(self, config: Any, matching: str = "hungarian", quality_labels: bool = True, weight: float = 1.0,
                 epsilon: float = SYNONYM_EPSILON, max_negatives: int | None = None) -> None:
        super().__init__(config, matching, quality_labels)
        self.weight_dict = {**self.weight_dict, RCL_LOSS: weight}
        self.epsilon = epsilon
        self.max_negatives = max_negatives
        self.similarity: Tensor | None = None
        self._layer_rcl: Tensor | None = None

    @classmethod
    def for_model(cls, config: Any, quality_labels: bool = True, weight: float = 1.0,  # type: ignore[override]
                  epsilon: float = SYNONYM_EPSILON) -> "RCLCriterion":
        return cls(config, "identity" if config.variant == "rtagger" else "hungarian", quality_labels, weight,
                   epsilon)

    def relation_loss(self, outputs, targets, indices, batch_idx, query_idx) -> Tensor:  # type: ignore[no-untyped-def]
        # The matching is computed once per layer by the base class; the RCL term reuses it here.
        self._layer_rcl = rcl_relation_term(outputs["pred_verb_logits"], targets, indices, batch_idx, query_idx,
                                            self.similarity, self.epsilon, self.max_negatives,
                                            outputs.get("relation_pad_mask"))
        return super().relation_loss(outputs, targets, indices, batch_idx, query_idx)

    def _layer_losses(self, outputs, targets, num_pairs) -> dict[str, Tensor]:  # type: ignore[no-untyped-def]
        self._layer_rcl = None
        losses = super()._layer_losses(outputs, targets, num_pairs)
        assert self._layer_rcl is not None, "relation_loss was not called for this layer"
        losses[RCL_LOSS] = self._layer_rcl
        return losses
