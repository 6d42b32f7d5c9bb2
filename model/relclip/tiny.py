"""A tiny CLIP with random weights, built offline from configs.

For tests, benchmarks and offline smoke runs: the real ``CLIPModel``
architecture, tokenizer (byte-level BPE without merges, so every word is
spelled in characters) and image processor, with a few hundred thousand
parameters. Its similarities are meaningless until trained; never label with it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def build_tiny_clip(seed: int = 0, image_size: int = 32, patch_size: int = 8,
                    projection_dim: int = 32) -> tuple[Any, Any]:
    """A randomly initialised ``CLIPModel`` and its ``CLIPProcessor``."""
    import torch
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel, CLIPProcessor, CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    alphabet = sorted(ByteLevel.alphabet())
    for token in alphabet + [c + "</w>" for c in alphabet]:
        vocab.setdefault(token, len(vocab))
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[])
    image_processor = CLIPImageProcessorPil(size={"shortest_edge": image_size},
                                         crop_size={"height": image_size, "width": image_size})
    processor = CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer)
    config = CLIPConfig(
        text_config={
            "vocab_size": len(vocab), "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
            "num_attention_heads": 2, "max_position_embeddings": 77,
            "bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 1,
        },
        vision_config={
            "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
            "image_size": image_size, "patch_size": patch_size,
        },
        projection_dim=projection_dim,
    )
    # Forked so building a model does not reseed the caller's random stream.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = CLIPModel(config).eval()
    return model, processor


def save_tiny_clip(directory: Path | str, seed: int = 0, image_size: int = 32, patch_size: int = 8) -> Path:
    """Write a tiny CLIP where ``tag.clip_model`` / ``--clip-model`` can point (the real loading path)."""
    model, processor = build_tiny_clip(seed=seed, image_size=image_size, patch_size=patch_size)
    directory = Path(directory)
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory
