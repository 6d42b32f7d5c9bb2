"""RelCLIP: relational contrastive learning with semantic-aware negative sampling.

    similarity = predicate_similarity(predicates)                # MiniLM word embeddings
    dictionary = build_negative_dictionary(similarity, epsilon=0.7)
    loss = RelationalContrastiveLoss(dictionary, mode="dual")(visual, texts, targets)

:mod:`model.relclip.sampling` builds the per-predicate negative dictionaries,
:mod:`model.relclip.loss` the contrastive objective, and
:mod:`model.relclip.classifier` a predicate classifier on frozen CLIP features.
"""

from model.relclip.loss import CONTRAST_MODES, ContrastMode, RelationalContrastiveLoss, weighted_info_nce
from model.relclip.sampling import (
    SYNONYM_EPSILON,
    NegativeDictionary,
    build_negative_dictionary,
    predicate_similarity,
)

__all__ = [
    "CONTRAST_MODES", "ContrastMode", "NegativeDictionary", "RelationalContrastiveLoss", "SYNONYM_EPSILON",
    "build_negative_dictionary", "predicate_similarity", "weighted_info_nce",
]
