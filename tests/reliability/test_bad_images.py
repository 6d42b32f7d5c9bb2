"""Broken and unusual images: a specific error row or a correct RGB image, never a crash.

Each case runs through ``pipeline.images.load_image`` and through the real caption
stage, with the oracle backend (which still opens every image) and with a tiny
random BLIP (the ``blip`` backend's real code path, pixels included).
"""

from __future__ import annotations

import json
import random
import warnings
from pathlib import Path

import pytest
from PIL import Image

from pipeline.config import RunConfig
from pipeline.images import BadImage, load_image
from stages.caption import run_caption
from tests.reliability.bad_images import BLUE, RED, write_image_zoo, zoo_files

# The forged 10001x10001 PNG trips Pillow's warning before our own limit refuses it.
pytestmark = pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")

@pytest.fixture(scope="module")
def zoo(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("zoo")
    return root, write_image_zoo(root)


@pytest.mark.parametrize("name", sorted(zoo_files()))
def test_load_image_gives_rgb_or_a_specific_reason(zoo, name):
    root, expected = zoo
    outcome = expected[name]
    if isinstance(outcome, str):
        with pytest.raises(BadImage) as info:
            load_image(root, name)
        assert info.value.reason == outcome, info.value
        assert name in info.value.detail  # the message says which file
    else:
        img = load_image(root, name)
        assert img.mode == "RGB" and img.size == outcome


def _close(pixel: tuple[int, ...], colour: tuple[int, int, int], tol: int = 60) -> bool:
    return all(abs(a - b) <= tol for a, b in zip(pixel, colour))


@pytest.mark.parametrize("name, top_left, bottom_right", [
    ("exif_rotate_90.jpg", RED, BLUE),  # the stored left half is on top once displayed
    ("exif_rotate_270.jpg", BLUE, RED),
    ("exif_rotate_180.jpg", BLUE, RED),
    ("exif_mirror.jpg", BLUE, RED),
    ("ok.jpg", RED, BLUE),
])
def test_exif_orientation_is_applied(zoo, name, top_left, bottom_right):
    root, _ = zoo
    img = load_image(root, name)
    w, h = img.size
    assert _close(img.getpixel((2, 2)), top_left)
    assert _close(img.getpixel((w - 3, h - 3)), bottom_right)


def test_colour_modes_keep_their_colours(zoo):
    root, _ = zoo
    for name in ("cmyk.jpg", "rgba.png", "palette_alpha.png"):
        img = load_image(root, name)
        assert _close(img.getpixel((2, 2)), RED), name
        assert _close(img.getpixel((img.size[0] - 3, 2)), BLUE), name


def test_sixteen_bit_grayscale_keeps_its_contrast(zoo):
    """Pillow clips 16-bit values to 0..255 when converting; a ramp must stay a ramp, not turn white."""
    root, _ = zoo
    values = [load_image(root, "grayscale16.png").getpixel((x, 4))[0] for x in range(32)]
    assert values == sorted(values)
    assert len(set(values)) == 32, values  # every step of the ramp still distinct
    assert values[0] < 10 and values[-1] > 230


def test_fuzzed_images_never_escape_as_other_exceptions(tmp_path):
    """Random byte damage to valid files of six formats: every outcome is an image or a BadImage."""
    rng = random.Random(1234)
    base = Image.new("RGB", (48, 32))
    base.putdata([(rng.randrange(256), rng.randrange(256), rng.randrange(256)) for _ in range(48 * 32)])
    sources = {}
    formats = (("JPEG", "jpg"), ("PNG", "png"), ("GIF", "gif"), ("WEBP", "webp"), ("TIFF", "tif"), ("BMP", "bmp"))
    for fmt, ext in formats:
        path = tmp_path / f"src.{ext}"
        base.save(path, fmt)
        sources[ext] = path.read_bytes()
    outcomes = {"image": 0, "bad": 0}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow warns about corrupt EXIF/TIFF tags it skips
        for i in range(400):
            ext = rng.choice(sorted(sources))
            data = bytearray(sources[ext])
            if i % 3 == 0:
                data = data[: rng.randrange(len(data))]
            else:
                span = 256 if i % 3 == 1 else len(data)  # headers, or anywhere
                for _ in range(rng.randint(1, 12)):
                    data[rng.randrange(min(span, len(data)))] = rng.randrange(256)
            name = f"fuzz{i}.{ext}"
            (tmp_path / name).write_bytes(bytes(data))
            try:
                img = load_image(tmp_path, name)
            except BadImage as exc:
                assert exc.reason in {"corrupt_image", "image_too_large", "image_too_small"}
                outcomes["bad"] += 1
            else:
                assert img.mode == "RGB"
                outcomes["image"] += 1
    assert outcomes["bad"] > 50 and outcomes["image"] > 0


# -- through the caption stage ---------------------------------------------------------------------------------------

def _ingest_rows(names: list[str]) -> list[dict]:
    return [{"image_id": i, "file_name": name, "width": 64, "height": 48, "dataset": "zoo", "data_split": "train",
             "objects": []} for i, name in enumerate(names, start=1)]


def _captions_file(path: Path, n_images: int) -> Path:
    path.write_text(json.dumps({"annotations": [
        {"id": 10 * i + k, "image_id": i, "caption": f"a red and blue picture number {i} view {k}"}
        for i in range(1, n_images + 1) for k in range(3)]}))
    return path


def _check_accounting(out, rows_in: list[dict], expected: dict, n_captions: int) -> None:
    by_id = {row["image_id"]: row["file_name"] for row in rows_in}
    captioned = {}
    for row in out.rows:
        captioned.setdefault(row["image_id"], []).append(row)
    errors = {e.image_id: e for e in out.errors}
    assert not set(captioned) & set(errors), "an image is both captioned and in errors"
    assert set(captioned) | set(errors) == set(by_id), "an image was silently dropped"
    for image_id, name in by_id.items():
        outcome = expected[name]
        if isinstance(outcome, str):
            assert errors[image_id].reason == outcome and errors[image_id].stage == "caption", name
        else:
            assert len(captioned[image_id]) == n_captions, name


def test_caption_stage_with_oracle_accounts_for_every_image(zoo, tmp_path):
    root, expected = zoo
    names = sorted(expected)
    rows = _ingest_rows(names)
    cfg = RunConfig(dataset={"kind": "coco-format", "annotations": tmp_path / "unused.json", "images": root},
                    caption={"backend": "oracle", "captions_file": _captions_file(tmp_path / "c.json", len(names)),
                             "n_captions": 3, "batch_size": 4})
    out = run_caption({"ingest": rows}, cfg)
    _check_accounting(out, rows, expected, n_captions=3)


def test_caption_stage_with_tiny_blip_accounts_for_every_image(zoo, tmp_path):
    from stages.captioners import BlipCaptioner
    from stages.captioners.tiny import build_tiny_blip

    root, expected = zoo
    names = sorted(expected)
    rows = _ingest_rows(names)
    cfg = RunConfig(dataset={"kind": "coco-format", "annotations": tmp_path / "unused.json", "images": root},
                    caption={"backend": "blip", "n_captions": 2, "batch_size": 4, "device": "cpu",
                             "max_new_tokens": 6, "min_new_tokens": 1})
    model, processor = build_tiny_blip(seed=0)
    out = run_caption({"ingest": rows}, cfg, captioner=BlipCaptioner(model, processor, cfg.caption))
    _check_accounting(out, rows, expected, n_captions=2)
