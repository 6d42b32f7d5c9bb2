"""Caption backends behind one interface, picked by ``caption.backend``.

``blip``: BLIP on transformers (default). ``oracle``: the dataset's human
captions. ``lavis``: BLIP through salesforce-lavis, only in an environment that
has it (see :mod:`stages.captioners.lavis`). Models and caption files are
loaded once per process; building a captioner after that is cheap.
"""

from __future__ import annotations

from collections.abc import Callable

from pipeline.config import RunConfig
from stages.captioners.base import Captioner, CaptionerLoadError, batch_seed
from stages.captioners.blip import BlipCaptioner
from stages.captioners.lavis import LavisCaptioner
from stages.captioners.oracle import OracleCaptioner


def _build_blip(cfg: RunConfig) -> Captioner:
    return BlipCaptioner.from_config(cfg.caption)


def _build_oracle(cfg: RunConfig) -> Captioner:
    from pipeline.datasets import default_captions_file

    captions_file = cfg.caption.captions_file or default_captions_file(cfg.dataset)
    return OracleCaptioner.from_file(captions_file, cfg.caption.n_captions)


def _build_lavis(cfg: RunConfig) -> Captioner:
    return LavisCaptioner.from_config(cfg.caption)


BACKENDS: dict[str, Callable[[RunConfig], Captioner]] = {
    "blip": _build_blip,
    "oracle": _build_oracle,
    "lavis": _build_lavis,
}


def build_captioner(cfg: RunConfig) -> Captioner:
    """The captioner ``cfg.caption.backend`` names, configured from ``cfg``."""
    try:
        factory = BACKENDS[cfg.caption.backend]
    except KeyError:
        raise CaptionerLoadError(f"unknown caption backend {cfg.caption.backend!r}; known: {sorted(BACKENDS)}") from None
    return factory(cfg)


__all__ = [
    "BACKENDS",
    "BlipCaptioner",
    "Captioner",
    "CaptionerLoadError",
    "LavisCaptioner",
    "OracleCaptioner",
    "batch_seed",
    "build_captioner",
]
