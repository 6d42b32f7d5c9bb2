"""Optional LAVIS captioner: Salesforce's own BLIP implementation (``salesforce-lavis``).

LAVIS pins old transformers and cannot be installed next to transformers 5, so
it is never a dependency of relfactory: this backend imports it lazily and only
works in a separate environment that has it. ``caption.model_id`` names a LAVIS
model as ``<name>:<model_type>`` (default ``blip_caption:large_coco``, the same
COCO-finetuned ViT-L BLIP as the ``blip`` backend's default).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from PIL import Image

from pipeline.config import CaptionConfig
from stages.captioners.base import Captioner, CaptionerLoadError, normalise_caption, resolve_device, seeded_torch
from stages.captioners.blip import SAMPLING_TOP_K

DEFAULT_LAVIS_MODEL = "blip_caption:large_coco"
# LAVIS's nucleus-sampling branch ignores the repetition_penalty argument and
# uses this value; it is what gets recorded for sampled captions.
LAVIS_SAMPLING_REPETITION_PENALTY = 1.1
# The blip backend's default id maps to the equivalent LAVIS checkpoint, so
# switching backend alone keeps the same model.
_HF_TO_LAVIS = {
    "Salesforce/blip-image-captioning-large": "blip_caption:large_coco",
    "Salesforce/blip-image-captioning-base": "blip_caption:base_coco",
}

INSTALL_HINT = (
    "the 'lavis' caption backend needs the salesforce-lavis package, which cannot share an environment with "
    "transformers 5 (it pins transformers<4.27). Create a separate environment for it, e.g. "
    "`python -m venv .venv-lavis && .venv-lavis/bin/pip install salesforce-lavis` and install relfactory there "
    "without its transformers pin, then run the caption stage from that environment; or use caption.backend='blip', "
    "which runs the same BLIP model on transformers"
)


def lavis_model_name(model_id: str) -> tuple[str, str]:
    """``name:model_type`` → (name, model_type)."""
    spec = _HF_TO_LAVIS.get(model_id, model_id)
    name, sep, model_type = spec.partition(":")
    if not sep or not name or not model_type:
        raise CaptionerLoadError(
            f"caption.model_id={model_id!r} is not a LAVIS model; the lavis backend expects '<name>:<model_type>', "
            f"e.g. {DEFAULT_LAVIS_MODEL!r}"
        )
    return name, model_type


@functools.lru_cache(maxsize=2)
def load_lavis(model_id: str, device: str) -> tuple[Any, Any]:
    """Load a LAVIS model and its eval image transform once per process."""
    try:
        from lavis.models import load_model_and_preprocess
    except ImportError as exc:
        raise CaptionerLoadError(f"{INSTALL_HINT}. Import error: {exc}") from exc
    name, model_type = lavis_model_name(model_id)
    try:
        model, vis_processors, _ = load_model_and_preprocess(name=name, model_type=model_type, is_eval=True, device=device)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise CaptionerLoadError(
            f"cannot load LAVIS model {name}:{model_type}: {exc}. LAVIS downloads its checkpoints on first use "
            "into its cache (see lavis/configs/default.yaml, cache_root); on a machine without network, copy that "
            "cache from a connected machine"
        ) from exc
    return model, vis_processors["eval"]


class LavisCaptioner(Captioner):
    """Captions with a LAVIS BLIP model, same decoding parameters as the blip backend."""

    name = "lavis"

    def __init__(self, model: Any, transform: Any, cfg: CaptionConfig, model_id: str) -> None:
        self._model = model
        self._transform = transform
        self._model_id = model_id
        self._cfg = cfg
        if getattr(model, "prompt", None) != cfg.prompt:
            # LAVIS strips ``len(model.prompt)`` characters and counts
            # ``prompt_length`` tokens; both must describe the prompt we use.
            model.prompt = cfg.prompt
            model.prompt_length = len(model.tokenizer(cfg.prompt).input_ids) - 1
        self._prompt_length = int(getattr(model, "prompt_length", 0))
        self._device = next(model.parameters()).device

    @classmethod
    def from_config(cls, cfg: CaptionConfig) -> "LavisCaptioner":
        model, transform = load_lavis(cfg.model_id, resolve_device(cfg.device))
        name, model_type = lavis_model_name(cfg.model_id)
        return cls(model, transform, cfg, f"{name}:{model_type}")

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def decoding(self) -> dict[str, Any]:
        cfg = self._cfg
        common = {
            "min_new_tokens": cfg.min_new_tokens,
            "max_new_tokens": cfg.max_new_tokens,
            "repetition_penalty": cfg.repetition_penalty,
            "prompt": cfg.prompt,
            "batch_size": cfg.batch_size,
        }
        if cfg.n_captions == 1:
            return {"strategy": "beam", "do_sample": False, "num_beams": cfg.num_beams, "num_return_sequences": 1, **common}
        return {
            "strategy": "nucleus",
            "do_sample": True,
            "top_p": cfg.top_p,
            "top_k": SAMPLING_TOP_K,
            "num_return_sequences": cfg.n_captions,
            **common,
            "repetition_penalty": LAVIS_SAMPLING_REPETITION_PENALTY,
        }

    def caption(self, image_ids: Sequence[int], images: Sequence[Image.Image] | None, seed: int) -> list[list[str]]:
        import torch

        if not images:
            return []
        cfg = self._cfg
        n = cfg.n_captions
        batch = torch.stack([self._transform(img) for img in images]).to(self._device)
        sample = n > 1
        if sample:
            # Older LAVIS releases lack ``num_captions``: repeating each image n
            # times gives n independent samples per image on every release.
            batch = batch.repeat_interleave(n, dim=0)
        # LAVIS hands max/min_length to transformers as total lengths, prompt included.
        kwargs = {
            "use_nucleus_sampling": sample,
            "num_beams": 1 if sample else cfg.num_beams,
            "max_length": self._prompt_length + cfg.max_new_tokens,
            "min_length": self._prompt_length + cfg.min_new_tokens,
            "top_p": cfg.top_p,
            "repetition_penalty": cfg.repetition_penalty,
        }
        with torch.inference_mode(), seeded_torch(seed, self._device):
            texts = self._model.generate({"image": batch}, **kwargs)
        per_image = n if sample else 1
        return [[normalise_caption(t) for t in texts[i * per_image : (i + 1) * per_image]] for i in range(len(images))]
