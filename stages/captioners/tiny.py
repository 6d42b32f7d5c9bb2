"""A tiny BLIP with random weights, built offline from configs.

For tests, benchmarks and offline smoke runs of the whole factory: it has the
real architecture and processor (so every code path of the ``blip`` backend
runs) but a few thousand parameters and a small caption vocabulary. Its captions
are random word salad, never use it for labels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]"]
WORDS = (
    "a picture of the an two man woman person people dog cat horse bird car bus train truck "
    "bench table chair couch bed plate pizza cake cup bottle umbrella kite frisbee ball surfboard "
    "skateboard skis bike motorcycle boat plane street field beach water snow grass room kitchen "
    "sitting standing riding holding eating walking playing flying on in with next to near under "
    "at front top group young large small white black red blue green and while is are"
).split()


def build_tiny_blip(seed: int = 0, image_size: int = 32, patch_size: int = 8) -> tuple[Any, Any]:
    """A randomly initialised ``BlipForConditionalGeneration`` and its ``BlipProcessor``."""
    import torch
    from transformers import BertTokenizer, BlipConfig, BlipForConditionalGeneration, BlipImageProcessorPil, BlipProcessor

    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS + WORDS)}
    tokenizer = BertTokenizer(vocab=vocab, bos_token="[DEC]")
    image_processor = BlipImageProcessorPil(size={"height": image_size, "width": image_size})
    processor = BlipProcessor(image_processor=image_processor, tokenizer=tokenizer)
    config = BlipConfig(
        text_config={
            "vocab_size": len(vocab),
            "hidden_size": 32,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "intermediate_size": 64,
            "max_position_embeddings": 64,
            "bos_token_id": vocab["[DEC]"],
            "sep_token_id": vocab["[SEP]"],
            "pad_token_id": vocab["[PAD]"],
        },
        vision_config={
            "hidden_size": 32,
            "image_size": image_size,
            "patch_size": patch_size,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "intermediate_size": 64,
        },
        projection_dim=16,
    )
    # Forked so building a model does not reseed the caller's random stream.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = BlipForConditionalGeneration(config).eval()
    return model, processor


def save_tiny_blip(directory: Path, seed: int = 0, image_size: int = 32, patch_size: int = 8) -> Path:
    """Write a tiny BLIP where ``caption.model_id`` can point (the real loading path)."""
    model, processor = build_tiny_blip(seed=seed, image_size=image_size, patch_size=patch_size)
    directory = Path(directory)
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory
