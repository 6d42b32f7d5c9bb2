"""Image paths from annotation files cannot escape the image root.

The annotation file is untrusted input: a ``file_name`` of ``../../etc/passwd``,
an absolute path, or a symlink (file or folder) pointing out of the root must be
refused as ``unsafe_path`` at ingest *and* when a stage opens the image, so a
tampered ingest part cannot sneak one past either.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from PIL import Image

from pipeline.config import DatasetConfig, RunConfig
from pipeline.datasets import read_dataset
from pipeline.images import BadImage, load_image, resolve_image_path
from stages.caption import run_caption


@pytest.fixture()
def tree(tmp_path: Path) -> dict[str, Path]:
    """An image root with good files and links, next to a secret folder outside it."""
    root, secret = tmp_path / "images", tmp_path / "secret"
    (root / "sub").mkdir(parents=True)
    secret.mkdir()
    Image.new("RGB", (8, 8), (10, 200, 10)).save(secret / "private.jpg")
    Image.new("RGB", (8, 8), (200, 10, 10)).save(root / "good.jpg")
    Image.new("RGB", (8, 8), (200, 10, 10)).save(root / "sub" / "nested.jpg")
    (root / "link_out.jpg").symlink_to(secret / "private.jpg")
    (root / "relative_link_out.jpg").symlink_to(Path("..") / "secret" / "private.jpg")
    (root / "dir_link_out").symlink_to(secret, target_is_directory=True)
    (root / "link_in.jpg").symlink_to(root / "sub" / "nested.jpg")
    (root / "loop.jpg").symlink_to(root / "loop.jpg")
    return {"root": root, "secret": secret}


UNSAFE = [
    "../secret/private.jpg",
    "../../../../../../etc/passwd",
    "sub/../../secret/private.jpg",
    "/etc/passwd",
    "//etc/passwd",
    "\\etc\\passwd",
    "link_out.jpg",
    "relative_link_out.jpg",
    "dir_link_out/private.jpg",
    "good.jpg\x00.png",
]


@pytest.mark.parametrize("name", UNSAFE)
def test_escaping_names_are_refused(tree, name):
    with pytest.raises(BadImage) as info:
        resolve_image_path(tree["root"], name)
    assert info.value.reason == "unsafe_path"
    with pytest.raises(BadImage, match="unsafe_path"):
        load_image(tree["root"], name)


def test_absolute_path_into_the_root_is_still_refused(tree):
    """Even a path that lands inside the root is refused when absolute: annotation paths are relative."""
    with pytest.raises(BadImage, match="unsafe_path"):
        resolve_image_path(tree["root"], str(tree["root"] / "good.jpg"))


@pytest.mark.parametrize("name", ["good.jpg", "sub/nested.jpg", "sub/../good.jpg", "./good.jpg", "link_in.jpg"])
def test_names_staying_inside_are_allowed(tree, name):
    assert load_image(tree["root"], name).size == (8, 8)


@pytest.mark.parametrize("name", ["..\\..\\etc\\passwd", "file:///etc/passwd", "~/private.jpg",
                                  "%2e%2e/secret/private.jpg"])
def test_lookalike_names_are_plain_missing_files_inside_the_root(tree, name):
    """On POSIX these are ordinary (odd) file names under the root: not found, never followed."""
    with pytest.raises(BadImage) as info:
        load_image(tree["root"], name)
    assert info.value.reason == "missing_image"


def test_symlink_loop_is_an_error_not_a_hang(tree):
    with pytest.raises(BadImage) as info:
        load_image(tree["root"], "loop.jpg")
    assert info.value.reason in {"missing_image", "unsafe_path", "corrupt_image"}


def test_root_given_through_a_symlink_still_works(tree, tmp_path):
    alias = tmp_path / "alias"
    alias.symlink_to(tree["root"], target_is_directory=True)
    assert load_image(alias, "sub/nested.jpg").size == (8, 8)
    with pytest.raises(BadImage, match="unsafe_path"):
        load_image(alias, "link_out.jpg")


@pytest.mark.parametrize("kind", ["coco", "objects365"])
def test_ingest_turns_every_escape_into_an_error_row(tree, tmp_path, kind):
    names = ["good.jpg", *[n for n in UNSAFE if "\x00" not in n], "link_in.jpg"]
    images = [{"id": i, "file_name": n, "width": 8, "height": 8} for i, n in enumerate(names, start=1)]
    ann = tmp_path / "instances.json"
    ann.write_text(json.dumps({"images": images, "annotations": [], "categories": [{"id": 1, "name": "person"}]}))
    result = read_dataset(DatasetConfig(kind=kind, annotations=ann, images=tree["root"]))
    kept = {row["file_name"] for row in result.rows}
    assert "good.jpg" in kept and "link_in.jpg" in kept
    assert not any("secret" in f or "passwd" in f for f in kept)
    refused = {e.image_id: e.reason for e in result.errors}
    assert len(refused) + len(result.rows) == len(names), "every image entry is accounted for"
    # Objects365's patch-folder fallback may rewrite an escaping name into a (missing) in-root name: still refused.
    assert set(refused.values()) <= {"unsafe_path", "missing_image"}
    assert all(row["file_name"] in {"good.jpg", "link_in.jpg"} for row in result.rows)


def test_caption_stage_refuses_escapes_even_from_a_tampered_ingest_part(tree, tmp_path):
    """Defence in depth: a stage re-checks paths, so a forged ingest row cannot read outside the root."""
    names = ["good.jpg", "../secret/private.jpg", "link_out.jpg", "dir_link_out/private.jpg", "/etc/hostname"]
    rows = [{"image_id": i, "file_name": n, "width": 8, "height": 8, "dataset": "x", "data_split": "train",
             "objects": []} for i, n in enumerate(names, start=1)]
    captions = tmp_path / "captions.json"
    captions.write_text(json.dumps({"annotations": [{"id": i, "image_id": i, "caption": "a photo"}
                                                    for i in range(1, len(names) + 1)]}))
    cfg = RunConfig(dataset={"kind": "coco-format", "annotations": tmp_path / "unused.json", "images": tree["root"]},
                    caption={"backend": "oracle", "captions_file": captions, "n_captions": 1})
    out = run_caption({"ingest": rows}, cfg)
    assert [r["image_id"] for r in out.rows] == [1]
    assert sorted((e.image_id, e.reason) for e in out.errors) == [(i, "unsafe_path") for i in range(2, 6)]
    assert all(str(tree["secret"]) not in e.detail for e in out.errors), "details must not echo resolved outside paths"


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read any file; the refusal above does not depend on it")
def test_unreadable_image_is_an_error_row(tree):
    path = tree["root"] / "good.jpg"
    path.chmod(0)
    try:
        with pytest.raises(BadImage) as info:
            load_image(tree["root"], "good.jpg")
        assert info.value.reason == "corrupt_image"
    finally:
        path.chmod(0o644)
