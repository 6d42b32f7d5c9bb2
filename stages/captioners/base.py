"""The interface every caption backend implements, and what they share.

A captioner turns one batch of images into ``n_captions`` strings per image. The
stage (:mod:`stages.caption`) owns batching, image loading and row building; a
backend only decodes. Backends that read no pixels (the human-caption oracle)
say so with ``needs_pixels = False`` and the stage skips opening images.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from typing import Any

from PIL import Image

from pipeline.text_safety import clean_text

# Sampling draws from torch's process-wide generator: two threads generating at
# once in one process would interleave their draws and break determinism.
_RNG_LOCK = threading.Lock()


class CaptionerLoadError(RuntimeError):
    """A caption backend could not be set up (weights, package or captions file missing).

    Retrying does not help: the message says what to provide and where.
    """

    fatal = True  # the runner stops the run instead of retrying or recording error rows
    user_facing = True  # the CLI prints the message without a traceback


class Captioner(ABC):
    """One caption backend, configured for one set of decoding parameters."""

    name: str
    needs_pixels: bool = True

    @property
    @abstractmethod
    def model_id(self) -> str:
        """The model (or captions source) recorded in every caption row."""

    @property
    @abstractmethod
    def decoding(self) -> dict[str, Any]:
        """Decoding parameters recorded (as JSON) in every caption row."""

    @abstractmethod
    def caption(self, image_ids: Sequence[int], images: Sequence[Image.Image] | None, seed: int) -> list[list[str]]:
        """Captions for each image, in input order.

        ``images`` is ``None`` when ``needs_pixels`` is False. An empty list for an
        image means the backend has no caption for it (the stage records an error).
        """


def batch_seed(run_seed: int, image_ids: Sequence[int]) -> int:
    """Seed for one batch, from the run seed and the batch's image ids.

    Depending only on *which* images are in the batch (not on which worker ran it
    or in what order parts were scheduled) makes sampled captions reproducible.
    """
    payload = json.dumps([int(run_seed), [int(i) for i in image_ids]], separators=(",", ":"))
    return int.from_bytes(hashlib.sha256(payload.encode()).digest()[:8], "big") & ((1 << 63) - 1)


@contextlib.contextmanager
def seeded_torch(seed: int, device: Any) -> Iterator[None]:
    """Seed torch's generators for one generate() call without disturbing the caller's."""
    import torch

    devices = [device.index or 0] if getattr(device, "type", "cpu") == "cuda" else []
    with _RNG_LOCK, torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def resolve_device(spec: str) -> str:
    """``auto`` → ``cuda`` when a GPU is visible, else ``cpu``; anything else as given."""
    if spec != "auto":
        return spec
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def normalise_caption(text: str) -> str:
    """One line of storable, parseable text: invisible controls and lone surrogates cleaned, spaces collapsed."""
    return " ".join(clean_text(text).split())
