"""`relfactory report`: a self-contained HTML page that loads cleanly in a real browser."""

from __future__ import annotations

import re

import pytest

from pipeline.cli import main
from tests.inspection.browser import find_chromium, load_page


@pytest.fixture(scope="module")
def report(coco_runs, tmp_path_factory):
    dest = tmp_path_factory.mktemp("report") / "report.html"
    assert main(["report", str(coco_runs.oracle), "--images", str(coco_runs.images), "--out", str(dest),
                 "--gallery", "4"]) == 0
    return dest


def test_report_is_self_contained_and_has_every_section(report):
    text = report.read_text()
    for heading in ("Stages", "Per image", "Images without relations", "Top relation texts",
                    "Top subject–relation–object triplets", "Per-class coverage", "Sample images"):
        assert f"<h2>{heading}" in text
    sources = re.findall(r"""(?:src|href)=['"]([^'"]+)""", text)
    assert sources and all(s.startswith("data:image/") for s in sources)  # no file or network reference
    assert "<script" not in text
    # Four plots (relations per image, kept vs η, confidence, coverage) and the four gallery photos.
    assert text.count("data:image/png") == 4 and text.count("data:image/jpeg") == 4


def test_report_loads_in_headless_chromium_without_errors(report):
    chromium = find_chromium()
    if chromium is None:
        pytest.skip("chromium is not installed (CI installs it: .ci/run)")
    page = load_page(chromium, report)
    assert page.errors == []
    assert [url for url in page.requests if not url.startswith(("file:", "data:"))] == []
    assert len(page.images) == 8
    assert all(img["complete"] and img["width"] > 0 and img["height"] > 0 for img in page.images)


def test_report_and_show_of_the_bundled_demo(demo_gaps, tmp_path, capsys):
    """Runs on a clean checkout too (no shared data): the demo's photos ship with scikit-image."""
    dest = tmp_path / "demo.html"
    assert main(["report", str(demo_gaps), "--out", str(dest)]) == 0
    text = dest.read_text()
    assert "<td>caption error: no_captions</td>" in text and "gallery skipped" not in text
    assert main(["show", str(demo_gaps), "--out", str(tmp_path / "demo.png")]) == 0
    assert (tmp_path / "demo.png").stat().st_size > 10_000
    chromium = find_chromium()
    if chromium is not None:
        page = load_page(chromium, dest)
        assert page.errors == [] and page.images and all(img["width"] > 0 for img in page.images)
