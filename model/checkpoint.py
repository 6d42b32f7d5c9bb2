"""Self-contained checkpoints: config, weights, tokenizer and versions in one file.

A checkpoint holds only plain containers, strings and tensors, so it loads
with ``torch.load(weights_only=True)``. The text encoder's architecture
(its Hugging Face config) and the tokenizer (its ``tokenizer.json``) are
stored inside, so loading never downloads anything.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from storage.atomic import atomic_write

from .configuration import CHAR_TOKENIZER, RLIPv2Config
from .text_check import warn_if_labels_collapse

FORMAT = "relfactory-rlipv2"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A file that is not a loadable relfactory RLIPv2 checkpoint."""


def _versions() -> dict[str, str]:
    import transformers

    try:
        from importlib.metadata import version

        ours = version("relfactory")
    except Exception:  # noqa: BLE001 - an uninstalled checkout has no distribution metadata
        ours = "unknown"
    return {"torch": str(torch.__version__), "transformers": str(transformers.__version__), "relfactory": str(ours)}


def save_checkpoint(path: str | Path, model: nn.Module, metadata: dict[str, Any] | None = None) -> Path:
    """Write ``model`` (an RLIPv2 module) with everything needed to rebuild it offline."""
    from .base import RLIPv2Base

    if not isinstance(model, RLIPv2Base):
        raise TypeError(f"expected an RLIPv2 model, got {type(model).__name__}")
    config = model.config
    text_config = model.text_encoder.model.config.to_dict()
    tokenizer = model.text_encoder.tokenizer
    payload: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": config.to_dict(),
        "text_config": json.loads(json.dumps(text_config, default=str)),
        "tokenizer_json": tokenizer.backend_tokenizer.to_str() if config.tokenizer != CHAR_TOKENIZER else None,
        "tokenizer_special_tokens": dict(tokenizer.special_tokens_map) if config.tokenizer != CHAR_TOKENIZER else None,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "versions": _versions(),
        "metadata": dict(metadata or {}),
    }
    path = Path(path)
    # Write then rename: a crash never leaves a half-written checkpoint behind.
    atomic_write(path, lambda tmp: torch.save(payload, tmp))
    return path


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - report any unpickling failure as a bad checkpoint
        raise CheckpointError(f"cannot read {path} as a weights-only checkpoint: {exc}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a {FORMAT} checkpoint (convert official weights with model.convert_official)")
    if int(payload.get("format_version", -1)) > FORMAT_VERSION:
        raise CheckpointError(f"{path} has format version {payload['format_version']}, newer than {FORMAT_VERSION}")
    return payload


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu",
                    strict: bool = True) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model saved at ``path``; returns ``(model, metadata)``."""
    from transformers import AutoConfig, AutoModel

    from .parsed import build_model

    payload = read_checkpoint(path, map_location)
    config = RLIPv2Config.from_dict(payload["config"])
    text_config = dict(payload["text_config"])
    model_type = text_config.pop("model_type")
    text_model = AutoModel.from_config(AutoConfig.for_model(model_type, **text_config))
    tokenizer = _tokenizer_from_payload(payload)
    # Pretrained backbone weights are already part of the state dict.
    model = build_model(config.replace(backbone_weights=None), text_model=text_model, tokenizer=tokenizer,
                        check_labels=False)
    missing, unexpected = model.load_state_dict(payload["state_dict"], strict=False)
    if strict and (missing or unexpected):
        raise CheckpointError(f"checkpoint {path} does not fit its own config: missing={missing} unexpected={unexpected}")
    model.eval()
    warn_if_labels_collapse(model.text_encoder, where=f"checkpoint {Path(path).name}")
    return model, dict(payload.get("metadata") or {})


def _tokenizer_from_payload(payload: dict[str, Any]) -> Any:
    if payload.get("tokenizer_json") is None:
        return None
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    special = {k: v for k, v in (payload.get("tokenizer_special_tokens") or {}).items() if isinstance(v, str)}
    return PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(payload["tokenizer_json"]), **special)
