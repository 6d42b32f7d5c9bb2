"""CLIP (transformers ``CLIPModel``) as a frozen encoder of image crops and texts.

Default weights: ``openai/clip-vit-base-patch32`` (ViT-B/32, 512-d embeddings).
Weights are never downloaded by relfactory's tests; have them in the Hugging
Face cache (``hf download openai/clip-vit-base-patch32`` on a connected
machine) or pass a directory written by ``save_pretrained``.
"""

from __future__ import annotations

import functools
import os
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

DEFAULT_CLIP_MODEL = "openai/clip-vit-base-patch32"
# Prompts are built from class names and relation texts, so a long tagging run
# meets millions of distinct ones; 100k cached 512-d vectors is ~200 MB.
MAX_CACHED_TEXTS = 100_000
Box = tuple[float, float, float, float]


class ClipLoadError(RuntimeError):
    """The CLIP model could not be loaded (missing from the cache, bad directory)."""

    fatal = True  # a missing model stops the run instead of being retried part by part
    user_facing = True


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


class ClipEncoder:
    """L2-normalised CLIP embeddings of images and texts; recent texts are cached (least recently used out)."""

    def __init__(self, model: Any, processor: Any, device: str = "cpu", max_cached_texts: int = MAX_CACHED_TEXTS
                 ) -> None:
        self.model = model.to(device).eval()
        self.image_processor = processor.image_processor
        self.tokenizer = processor.tokenizer
        self.device = device
        self.max_cached_texts = max_cached_texts
        self._text_cache: OrderedDict[str, Tensor] = OrderedDict()

    @property
    def dim(self) -> int:
        return int(self.model.config.projection_dim)

    @property
    def logit_scale(self) -> float:
        """CLIP's learned inverse temperature (100 for the released models)."""
        return float(self.model.logit_scale.exp().item())

    @torch.no_grad()
    def encode_images(self, images: Sequence[Image.Image], batch_size: int = 64) -> Tensor:
        """``(N, D)`` float32 CPU embeddings of RGB images (crops)."""
        chunks = []
        for start in range(0, len(images), batch_size):
            pixels = self.image_processor(images=list(images[start:start + batch_size]), return_tensors="pt")
            out = self.model.get_image_features(pixel_values=pixels["pixel_values"].to(self.device))
            chunks.append(F.normalize(_pooled(out).float(), dim=-1).cpu())
        return torch.cat(chunks) if chunks else torch.zeros((0, self.dim))

    @torch.no_grad()
    def encode_texts(self, texts: Sequence[str], batch_size: int = 256) -> Tensor:
        """``(T, D)`` float32 CPU embeddings; a text seen recently is not encoded again."""
        wanted = list(dict.fromkeys(texts))
        found = {t: self._text_cache[t] for t in wanted if t in self._text_cache}
        missing = [t for t in wanted if t not in found]
        for start in range(0, len(missing), batch_size):
            batch = missing[start:start + batch_size]
            tokens = self.tokenizer(batch, padding=True, truncation=True,
                                    max_length=self.model.config.text_config.max_position_embeddings,
                                    return_tensors="pt").to(self.device)
            out = F.normalize(_pooled(self.model.get_text_features(**tokens)).float(), dim=-1).cpu()
            found.update(zip(batch, out))
        for text in wanted:
            self._text_cache[text] = found[text]
            self._text_cache.move_to_end(text)
        while len(self._text_cache) > self.max_cached_texts:
            self._text_cache.popitem(last=False)
        if not texts:
            return torch.zeros((0, self.dim))
        return torch.stack([found[t] for t in texts])


def _pooled(output: Any) -> Tensor:
    # transformers 5 returns a model output whose pooler_output is the projected embedding.
    return output if isinstance(output, Tensor) else output.pooler_output


@functools.lru_cache(maxsize=2)
def load_clip(model_id: str = DEFAULT_CLIP_MODEL, device: str = "auto") -> ClipEncoder:
    """A :class:`ClipEncoder` for ``model_id`` (hub id or local directory), once per process."""
    from transformers import AutoProcessor, CLIPModel

    try:
        processor = AutoProcessor.from_pretrained(model_id)
        model = CLIPModel.from_pretrained(model_id)
    except (OSError, ValueError) as exc:
        raise ClipLoadError(_load_error(model_id, exc)) from exc
    return ClipEncoder(model, processor, resolve_device(device))


def _load_error(model_id: str, exc: BaseException) -> str:
    if Path(model_id).expanduser().exists():
        return (f"CLIP model {model_id!r}: the directory exists but does not hold a CLIP model and processor "
                f"(config.json, weights, tokenizer and preprocessor files from save_pretrained). Cause: {exc}")
    offline = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE")
    return (f"cannot load CLIP model {model_id!r}: not in the local Hugging Face cache and not downloadable "
            f"({'offline mode is set' if offline else 'no network, or no such model id'}). On a connected "
            f"machine run `hf download {model_id}` and copy the cache here (HF_HOME), or pass a directory "
            f"written by save_pretrained. Cause: {exc}")


def crop(image: Image.Image, box: Box) -> Image.Image:
    """The ``x1, y1, x2, y2`` pixel region of ``image``, clamped to it and at least one pixel wide and high."""
    width, height = image.size
    x1 = min(max(int(box[0]), 0), width - 1)
    y1 = min(max(int(box[1]), 0), height - 1)
    x2 = max(min(int(round(box[2])), width), x1 + 1)
    y2 = max(min(int(round(box[3])), height), y1 + 1)
    return image.crop((x1, y1, x2, y2))


def union_box(a: Box, b: Box) -> Box:
    """The smallest ``x1, y1, x2, y2`` box enclosing both boxes."""
    return (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))


def xywh_to_xyxy(obj: dict[str, Any]) -> Box:
    """An INGEST object's ``x, y, w, h`` as ``x1, y1, x2, y2``."""
    x, y = float(obj["x"]), float(obj["y"])
    return (x, y, x + float(obj["w"]), y + float(obj["h"]))
