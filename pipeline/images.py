"""Safe, lazy image loading.

Paths come from annotation files, which are untrusted: a ``file_name`` may not
escape the image root (``../``, absolute paths, symlinks pointing out). Every
failure is a :class:`BadImage` with a reason code the stage turns into an error
row; nothing here crashes a run.
"""

from __future__ import annotations

import os
from pathlib import Path

from PIL import Image, ImageOps

# Pillow's own bomb guard warns at MAX_IMAGE_PIXELS and raises at twice that.
# 1e8 pixels (e.g. 10000 x 10000) is far beyond any detection dataset image.
MAX_IMAGE_PIXELS = 100_000_000
MIN_IMAGE_SIDE = 2


class BadImage(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def resolve_image_path(root: Path, file_name: str) -> Path:
    """Join ``file_name`` onto ``root`` and refuse anything that lands outside it."""
    if not file_name or "\x00" in file_name:
        raise BadImage("unsafe_path", f"empty or NUL-containing file name {file_name!r}")
    if os.path.isabs(file_name) or file_name.startswith(("/", "\\")):
        raise BadImage("unsafe_path", f"absolute path {file_name!r} is not allowed")
    root_real = Path(os.path.realpath(root))
    candidate = Path(os.path.realpath(root_real / file_name))
    if candidate != root_real and root_real not in candidate.parents:
        raise BadImage("unsafe_path", f"{file_name!r} resolves outside the image root")
    return candidate


def load_image(root: Path, file_name: str) -> Image.Image:
    """Open, verify and decode one image as RGB with EXIF orientation applied."""
    path = resolve_image_path(root, file_name)
    if not path.is_file():
        raise BadImage("missing_image", f"{file_name} not found under the image root")
    try:
        with Image.open(path) as probe:
            width, height = probe.size
            if width * height > MAX_IMAGE_PIXELS:
                raise BadImage("image_too_large", f"{file_name} is {width}x{height}, over {MAX_IMAGE_PIXELS} pixels")
            probe.verify()
        with Image.open(path) as img:
            img.load()
            img = ImageOps.exif_transpose(img)
            rgb = _to_rgb(img)
    except BadImage:
        raise
    except Image.DecompressionBombError as exc:
        raise BadImage("image_too_large", f"{file_name}: {str(exc).replace(str(path), file_name)}") from None
    except (OSError, SyntaxError, ValueError) as exc:
        # Pillow's messages name the full path; the row names the file as the annotations do.
        message = str(exc).replace(str(path), file_name)
        raise BadImage("corrupt_image", f"{file_name}: {type(exc).__name__}: {message}") from None
    if min(rgb.size) < MIN_IMAGE_SIDE:
        raise BadImage("image_too_small", f"{file_name} is {rgb.size[0]}x{rgb.size[1]}")
    return rgb


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode.startswith("I;16") or img.mode == "I":
        # Pillow clips 16-bit greys to 0..255 instead of scaling, which turns
        # almost every pixel white; scale the 16-bit range down first.
        img = img.convert("I").point(lambda v: v * (1 / 257)).convert("L")
    return img.convert("RGB")


Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
