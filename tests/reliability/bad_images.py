"""Writers of broken and unusual image files, each with what loading it must give.

``write_image_zoo(root)`` fills ``root`` with one file per case and returns
``{file_name: expected}``, where ``expected`` is either a ``BadImage`` reason code or
the ``(width, height)`` the decoded, EXIF-rotated RGB image must have.
"""

from __future__ import annotations

import io
import random
import struct
import zlib
from pathlib import Path

from PIL import Image

Expected = str | tuple[int, int]

RED, BLUE = (220, 20, 20), (20, 20, 220)


def halves(size: tuple[int, int]) -> Image.Image:
    """Left half red, right half blue: orientation mistakes show up as swapped colours."""
    img = Image.new("RGB", size, BLUE)
    img.paste(RED, (0, 0, size[0] // 2, size[1]))
    return img


def jpeg_bytes(img: Image.Image, **save: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90, **save)
    return buf.getvalue()


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def forged_png(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height``: a decompression bomb's calling card."""
    data = bytearray(png_bytes(Image.new("L", (1, 1))))
    # IHDR: 8-byte signature, 4-byte length, b"IHDR", then width and height; CRC covers type + data.
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def rotated_jpeg(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation  # Orientation
    return jpeg_bytes(halves((40, 20)), exif=exif.tobytes())


def bad_crc_png() -> bytes:
    data = bytearray(png_bytes(halves((16, 16))))
    data[29] ^= 0xFF  # IHDR's CRC
    return bytes(data)


def garbage_jpeg(seed: int = 0) -> bytes:
    rng = random.Random(seed)
    return b"\xff\xd8\xff\xe0" + bytes(rng.randrange(256) for _ in range(2000))


def gray16_png() -> bytes:
    img = Image.new("I;16", (32, 8))
    img.putdata([x * 2000 for _ in range(8) for x in range(32)])  # 0 .. 62000, a 16-bit ramp
    return png_bytes(img)


def palette_with_transparency() -> bytes:
    img = halves((24, 24)).convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
    buf = io.BytesIO()
    img.save(buf, "PNG", transparency=0)
    return buf.getvalue()


def zoo_files() -> dict[str, tuple[bytes | None, Expected]]:
    """file name → (content, expected outcome); content None: not a file (a folder, or never written)."""
    good = halves((64, 48))
    full_jpeg = jpeg_bytes(good)
    return {
        "ok.jpg": (full_jpeg, (64, 48)),
        "truncated.jpg": (full_jpeg[: len(full_jpeg) // 2], "corrupt_image"),
        "garbage.jpg": (garbage_jpeg(), "corrupt_image"),
        "text.jpg": (b"name,score\nthis is a CSV file, not a JPEG\n", "corrupt_image"),
        "empty.jpg": (b"", "corrupt_image"),
        "bad_crc.png": (bad_crc_png(), "corrupt_image"),
        "one_pixel.png": (png_bytes(Image.new("RGB", (1, 1), RED)), "image_too_small"),
        "one_pixel_wide.png": (png_bytes(Image.new("RGB", (1, 300), RED)), "image_too_small"),
        "two_pixels.png": (png_bytes(Image.new("RGB", (2, 2), RED)), (2, 2)),
        "bomb.png": (forged_png(10_001, 10_001), "image_too_large"),
        "huge_bomb.png": (forged_png(40_000, 40_000), "image_too_large"),
        "grayscale.jpg": (jpeg_bytes(good.convert("L")), (64, 48)),
        "grayscale16.png": (gray16_png(), (32, 8)),
        "bilevel.png": (png_bytes(good.convert("1")), (64, 48)),
        "cmyk.jpg": (jpeg_bytes(good.convert("CMYK")), (64, 48)),
        "rgba.png": (png_bytes(good.convert("RGBA")), (64, 48)),
        "gray_alpha.png": (png_bytes(good.convert("LA")), (64, 48)),
        "palette_alpha.png": (palette_with_transparency(), (24, 24)),
        "exif_rotate_90.jpg": (rotated_jpeg(6), (20, 40)),
        "exif_rotate_180.jpg": (rotated_jpeg(3), (40, 20)),
        "exif_rotate_270.jpg": (rotated_jpeg(8), (20, 40)),
        "exif_mirror.jpg": (rotated_jpeg(2), (40, 20)),
        "folder.jpg": (None, "missing_image"),  # a directory with an image's name
        "never_written.jpg": (None, "missing_image"),
    }


def write_image_zoo(root: Path) -> dict[str, Expected]:
    root.mkdir(parents=True, exist_ok=True)
    expected: dict[str, Expected] = {}
    for name, (data, outcome) in zoo_files().items():
        if data is not None:
            (root / name).write_bytes(data)
        elif name == "folder.jpg":
            (root / name).mkdir(exist_ok=True)
        expected[name] = outcome
    return expected
