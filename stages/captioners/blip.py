"""BLIP captioner on Hugging Face transformers (``BlipForConditionalGeneration``).

Decoding follows RLIPv2's captioning setup: the prompt "a picture of " primes
the decoder, ``n_captions`` captions per image come from nucleus sampling
(top-p) and a single caption from beam search. Sampling is seeded per batch, so
a re-run with the same seed and config gives the same captions.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from pipeline.config import CaptionConfig
from stages.captioners.base import Captioner, CaptionerLoadError, normalise_caption, resolve_device, seeded_torch

# BLIP (and LAVIS) sample with transformers' default top-k of 50 in front of the
# nucleus filter; it is passed explicitly so a model's own generation config
# cannot silently change it, and so it is recorded with the other parameters.
SAMPLING_TOP_K = 50


@functools.lru_cache(maxsize=2)
def load_blip(model_id: str, device: str, fp16: bool) -> tuple[Any, Any]:
    """Load processor + model once per process (keyed by id, device and precision)."""
    import torch
    from transformers import AutoProcessor, BlipForConditionalGeneration

    try:
        processor = AutoProcessor.from_pretrained(model_id)
        model = BlipForConditionalGeneration.from_pretrained(model_id, dtype=torch.float16 if fp16 else torch.float32)
    except (OSError, ValueError) as exc:
        raise CaptionerLoadError(load_error_message(model_id, exc)) from exc
    return model.to(device).eval(), processor


def load_error_message(model_id: str, exc: BaseException) -> str:
    if Path(model_id).expanduser().exists():
        return (
            f"caption model {model_id!r}: the directory exists but does not hold a loadable BLIP captioning model "
            f"(it needs config.json, the weights and the processor/tokenizer files, as written by save_pretrained). "
            f"Cause: {exc}"
        )
    offline = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE")
    return (
        f"cannot load caption model {model_id!r}: not found in the local Hugging Face cache "
        f"(HF_HOME={os.environ.get('HF_HOME', '~/.cache/huggingface')}) and it could not be downloaded "
        f"({'offline mode is set' if offline else 'no network, or no such model id'}). "
        f"On a connected machine run `hf download {model_id}` (older huggingface_hub: "
        f"`huggingface-cli download {model_id}`), then copy that cache here and point HF_HOME at it, "
        f"or save the model to a directory and pass that directory as caption.model_id. Cause: {exc}"
    )


class BlipCaptioner(Captioner):
    """Captions image batches with a BLIP model; accepts a loaded model + processor."""

    name = "blip"

    def __init__(self, model: Any, processor: Any, cfg: CaptionConfig, model_id: str | None = None) -> None:
        self._model = model
        self._image_processor = getattr(processor, "image_processor", processor)
        self._tokenizer = getattr(processor, "tokenizer", processor)
        self._model_id = model_id or cfg.model_id
        param = next(model.parameters())
        self._device, self._dtype = param.device, param.dtype
        # The decoder continues the prompt, so the prompt's tokens (with BOS in
        # place of [CLS], and without the trailing [SEP]) open every output.
        self._prompt_ids = self._tokenizer(cfg.prompt, return_tensors="pt").input_ids
        self._prompt_len = self._prompt_ids.shape[1] - 1
        self._generate_kwargs = generate_kwargs(cfg)
        self._n_per_image = self._generate_kwargs["num_return_sequences"]
        self._decoding = {
            "strategy": "nucleus" if self._generate_kwargs["do_sample"] else "beam",
            **self._generate_kwargs,
            "prompt": cfg.prompt,
            "batch_size": cfg.batch_size,
            "dtype": str(self._dtype).removeprefix("torch."),
        }

    @classmethod
    def from_config(cls, cfg: CaptionConfig) -> "BlipCaptioner":
        device = resolve_device(cfg.device)
        fp16 = cfg.fp16_on_gpu and device.startswith("cuda")
        model, processor = load_blip(cfg.model_id, device, fp16)
        return cls(model, processor, cfg)

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def decoding(self) -> dict[str, Any]:
        return dict(self._decoding)

    def caption(self, image_ids: Sequence[int], images: Sequence[Image.Image] | None, seed: int) -> list[list[str]]:
        import torch

        if not images:
            return []
        pixels = self._image_processor(images=list(images), return_tensors="pt").pixel_values
        pixels = pixels.to(self._device, self._dtype)
        input_ids = self._prompt_ids.to(self._device).repeat(len(images), 1)
        with torch.inference_mode(), seeded_torch(seed, self._device):
            out = self._model.generate(pixel_values=pixels, input_ids=input_ids, **self._generate_kwargs)
        # Slicing tokens, not strings: the tokenizer lower-cases and re-spaces, so
        # the decoded prompt need not equal cfg.prompt character for character.
        texts = self._tokenizer.batch_decode(out[:, self._prompt_len :], skip_special_tokens=True)
        n = self._n_per_image
        return [[normalise_caption(t) for t in texts[i * n : (i + 1) * n]] for i in range(len(images))]


def generate_kwargs(cfg: CaptionConfig) -> dict[str, Any]:
    """transformers ``generate`` arguments: beam search for one caption, nucleus sampling for several."""
    common = {
        "min_new_tokens": cfg.min_new_tokens,
        "max_new_tokens": cfg.max_new_tokens,
        "repetition_penalty": cfg.repetition_penalty,
    }
    if cfg.n_captions == 1:
        return {"do_sample": False, "num_beams": cfg.num_beams, "num_return_sequences": 1, **common}
    return {
        "do_sample": True,
        "top_p": cfg.top_p,
        "top_k": SAMPLING_TOP_K,
        "num_return_sequences": cfg.n_captions,
        **common,
    }
