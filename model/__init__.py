"""RLIPv2 (ParSeD, ParSeDA) and the Relation Tagger.

    config = RLIPv2Config.tiny("rtagger")            # or .parsed() / .parseda() / .rtagger() full size
    model = build_model(config)                       # RLIPv2ParSeD | RLIPv2ParSeDA | RTagger
    out = model(images, (entity_texts, relation_texts), targets)   # DETR-style dict
    losses = SetCriterion.for_model(config)(out, targets)          # losses["loss"] is the weighted sum
    save_checkpoint("m.pt", model); model, meta = load_checkpoint("m.pt")

R-Tagger inference: :class:`RTaggerPredictor` (see :mod:`model.tagging`).
Official weights: :mod:`model.convert_official`.
"""

from .base import EncodedBatch, RLIPv2Base
from .checkpoint import load_checkpoint, save_checkpoint
from .configuration import RLIPv2Config
from .losses import SetCriterion
from .matcher import HungarianMatcher
from .nested_tensor import NestedTensor, nested_tensor_from_images
from .parsed import RLIPv2ParSeD, RLIPv2ParSeDA, build_model
from .rtagger import RTagger
from .tagging import RTaggerPredictor, TaggingImage, relation_confidence
from .text_encoder import LabelBatch

__all__ = [
    "EncodedBatch", "HungarianMatcher", "LabelBatch", "NestedTensor", "RLIPv2Base", "RLIPv2Config", "RLIPv2ParSeD",
    "RLIPv2ParSeDA", "RTagger", "RTaggerPredictor", "SetCriterion", "TaggingImage", "build_model", "load_checkpoint",
    "nested_tensor_from_images", "relation_confidence", "save_checkpoint",
]
