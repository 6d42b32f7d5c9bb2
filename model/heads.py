"""Small prediction modules shared by ParSeD, ParSeDA and the R-Tagger."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# Logit given to padded label slots so softmax/sigmoid ignore them.
MASKED_LOGIT = -1e4


class MLP(nn.Module):
    """``num_layers`` linear layers with ReLU in between (DETR's box head)."""

    def __init__(self, input_dim: int, hidden_dim: int, output_dim: int, num_layers: int) -> None:
        super().__init__()
        dims = [input_dim] + [hidden_dim] * (num_layers - 1)
        self.layers = nn.ModuleList(nn.Linear(i, o) for i, o in zip(dims, dims[1:] + [output_dim]))

    def forward(self, x: Tensor) -> Tensor:
        for index, layer in enumerate(self.layers):
            x = layer(x)
            if index < len(self.layers) - 1:
                x = F.relu(x)
        return x


class FeatureResizer(nn.Module):
    """Linear map from the language width to the transformer width, then LayerNorm (MDETR)."""

    def __init__(self, input_dim: int, output_dim: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.fc = nn.Linear(input_dim, output_dim)
        self.layer_norm = nn.LayerNorm(output_dim, eps=1e-12)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.dropout(self.layer_norm(self.fc(x)))


class MultiBranchFusion(nn.Module):
    """Multi-branch fusion of two feature sets (Zhang et al., SCG): relation-query targets
    from the decoded subject and object queries (official ``vanilla_MBF``)."""

    def __init__(self, dim_a: int, dim_b: int, dim_out: int, cardinality: int) -> None:
        super().__init__()
        if dim_out % cardinality:
            raise ValueError("dim_out must be divisible by cardinality")
        branch = dim_out // cardinality
        self.fc_1 = nn.ModuleList(nn.Linear(dim_a, branch) for _ in range(cardinality))
        self.fc_2 = nn.ModuleList(nn.Linear(dim_b, branch) for _ in range(cardinality))
        self.fc_3 = nn.ModuleList(nn.Linear(branch, dim_out) for _ in range(cardinality))

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        total = sum(f3(F.relu(f1(a) * f2(b))) for f1, f2, f3 in zip(self.fc_1, self.fc_2, self.fc_3))
        return F.relu(total)


class TextSimilarityClassifier(nn.Module):
    """Logits as similarity between decoded queries and label-text tokens.

    ``logit = (h + a) . W(normalize(t) / 2) + c`` with a learnable bias vector
    ``a`` per branch (entities, relations) and ``c`` fixed so that the initial
    sigmoid is 0.01 (focal-loss prior). Classification by text keeps the label
    set open: any phrase can be a class.
    """

    def __init__(self, hidden_dim: int, prior_prob: float = 0.01) -> None:
        super().__init__()
        self.projection_text = nn.Linear(hidden_dim, hidden_dim)
        self.bias_obj_a = nn.Parameter(torch.zeros(hidden_dim))
        self.bias_pred_a = nn.Parameter(torch.zeros(hidden_dim))
        self.bias_c = -math.log((1 - prior_prob) / prior_prob)

    def project_text(self, text: Tensor) -> Tensor:
        return self.projection_text(F.normalize(text, p=2, dim=-1) / 2.0)

    def entity_logits(self, queries: Tensor, entity_text: Tensor, entity_mask: Tensor) -> Tensor:
        return self._logits(queries + self.bias_obj_a, entity_text, entity_mask)

    def relation_logits(self, queries: Tensor, relation_text: Tensor, relation_mask: Tensor) -> Tensor:
        return self._logits(queries + self.bias_pred_a, relation_text, relation_mask)

    def _logits(self, queries: Tensor, projected_text: Tensor, pad_mask: Tensor) -> Tensor:
        logits = torch.einsum("bqd,bld->bql", queries, projected_text) + self.bias_c
        return logits.masked_fill(pad_mask[:, None, :], MASKED_LOGIT)
