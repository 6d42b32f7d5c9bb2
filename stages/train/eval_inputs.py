"""Refuse an evaluation that could only score nothing, before a result file is written.

A missing or empty ``--images`` folder (or one holding none of the benchmark's
files) used to print mAP 0.00, write a result JSON beside the checkpoint and
exit 0: a result indistinguishable from a very bad model.
"""

from __future__ import annotations

from pathlib import Path

from .sources import SourceError


def check_image_folder(images: Path) -> None:
    """``images`` must be a folder with at least one entry."""
    images = Path(images)
    if not images.is_dir():
        raise SourceError(f"--images {images}: no such folder; give the benchmark's test image folder")
    if next(images.iterdir(), None) is None:
        raise SourceError(f"--images {images} is empty; give the benchmark's test image folder")


def check_some_images_read(images: Path, evaluated: int, unreadable: list[str]) -> None:
    """At least one of the benchmark's images must have been read from ``images``."""
    if evaluated == 0 or len(unreadable) >= evaluated:
        example = f" (e.g. {unreadable[0]})" if unreadable else ""
        raise SourceError(f"--images {images}: none of the benchmark's {evaluated} images could be read{example}; "
                          "nothing was scored or written")
