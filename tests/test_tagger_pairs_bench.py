"""The pair-assignment benchmark (bench/tagger_pairs.py) on a hand-made file and on the shared dev file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.tagger_pairs import (evaluate, load_hicodet, main, match_rows, oracle_predictions, predict,
                                restrict_to_interacting, score, twin_statistics)

NO_CAPS = {"max_relations_per_image": None, "max_relations_per_proposal": None}


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    """Two images in fredzzhang/hicodet's format, worked out by hand.

    1: one person riding and holding one bicycle (one candidate per proposal).
    2: two people each at their own horse; person A is drawn twice (IoU 0.9,
       merged), once riding, once feeding; both proposals have 2 x 2 candidates.
    Boxes after de-duplication: 2 -> person A (1), horse A (2), person B (3), horse B (4).
    """
    data = {
        "objects": ["bicycle", "horse", "person"], "verbs": ["hold", "ride", "feed"],
        "filenames": ["a.jpg", "b.jpg"], "size": [[100, 100], [200, 100]],
        "annotation": [
            {"boxes_h": [[0, 0, 20, 40], [0, 0, 20, 40]], "boxes_o": [[10, 30, 40, 50], [10, 30, 40, 50]],
             "object": [0, 0], "verb": [1, 0], "hoi": [0, 0]},
            {"boxes_h": [[0, 0, 20, 40], [100, 0, 120, 40], [1, 0, 21, 40]],
             "boxes_o": [[10, 30, 50, 60], [115, 35, 150, 60], [10, 30, 50, 60]],
             "object": [1, 1, 1], "verb": [1, 1, 2], "hoi": [0, 0, 0]},
        ],
    }
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(data))
    return path


def test_loading_deduplicates_boxes_and_builds_proposals(tiny: Path) -> None:
    first, second = load_hicodet(tiny)
    assert [c for c, _ in first.boxes] == ["person", "bicycle"] and not first.ambiguous
    assert first.truth == {("ride", 1, 2), ("hold", 1, 2)}
    assert [c for c, _ in second.boxes] == ["person", "horse", "person", "horse"] and second.ambiguous
    assert second.truth == {("ride", 1, 2), ("ride", 3, 4), ("feed", 1, 2)}
    assert second.proposals == [("feed", "horse"), ("ride", "horse")]
    # The real match code builds the candidates: every person x every horse, per proposal.
    rows = match_rows([second], oracle_number=False)
    assert {(p["subject_id"], p["object_id"]) for r in rows for p in r["pairs"]} == {(1, 2), (1, 4), (3, 2), (3, 4)}
    assert all(m["subject_number"] is None for r in rows for p in r["class_proposals"] for m in p["mentions"])


def test_twin_statistics(tiny: Path) -> None:
    # No box has a same-class twin; of the 2 + 4 (verb, object box) slots, all but (feed, horse B) are true.
    n_twin, _, n_single, true_single = twin_statistics(load_hicodet(tiny))
    assert (n_twin, n_single) == (0, 6) and true_single == pytest.approx(5 / 6)


def test_scores_by_hand(tiny: Path) -> None:
    images = load_hicodet(tiny)
    everything, ambiguous = evaluate(images, {"tagger": "greedy-all", **NO_CAPS})
    # 2 + 8 relations, 2 + 3 right, nothing missed.
    assert (everything.tp, everything.fp, everything.fn) == (5, 5, 0)
    assert (ambiguous.tp, ambiguous.fp, ambiguous.fn) == (3, 5, 0)
    assert everything.f1 == pytest.approx(2 * 0.5 / 1.5)
    for tagger in ("nearest", "layout"):
        everything, ambiguous = evaluate(images, {"tagger": tagger})
        # Each horse goes to the person touching it, for both verbs: only (feed, B, horse B) is wrong.
        assert (everything.tp, everything.fp, everything.fn) == (5, 1, 0), tagger
        assert (ambiguous.tp, ambiguous.fp, ambiguous.fn) == (3, 1, 0), tagger
    # Told the true counts ("a person feeds a horse", "two persons ride two horses"), layout gets all right.
    everything, _ = evaluate(images, {"tagger": "layout"}, oracle_number=True)
    assert (everything.tp, everything.fp, everything.fn) == (5, 0, 0)


def test_command_line_prints_one_line_per_tagger(tiny: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--annotations", str(tiny), "--taggers", "greedy-all,layout", "--oracle-number",
                 "--oracle-ceilings"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("tiny.json: 2 images (1 ambiguous), 5 true triplets")
    rows = {line.split()[0]: line for line in lines if " all P " in line}
    assert set(rows) == {"greedy-all", "layout", "layout[oracle-number]", "greedy-all[∩verb-blind]",
                         "layout[∩verb-blind]", "oracle[verb-blind]", "oracle[twin-blind]", "oracle[verb+twin-blind]"}
    assert "all P 0.833 R 1.000 F1 0.909" in rows["oracle[verb-blind]"]
    assert "all P 0.833 R 1.000 F1 0.909" in rows["layout"] and "ambiguous P 0.750 R 1.000 F1 0.857" in rows["layout"]


def test_oracle_ceilings(tiny: Path) -> None:
    images = load_hicodet(tiny)
    # Verb-blind: person B interacts with horse B, so "feed" goes there too, wrongly.
    everything, _ = score(images, oracle_predictions(images, verb_blind=True, twin_blind=False))
    assert (everything.tp, everything.fp, everything.fn) == (5, 1, 0)
    # No same-class twins here: the twin-blind oracle is the answer itself.
    everything, _ = score(images, oracle_predictions(images, verb_blind=False, twin_blind=True))
    assert (everything.tp, everything.fp, everything.fn) == (5, 0, 0)
    # A horse twin (IoU 0.5 with horse A): the twin-blind oracle takes it too, for every verb of horse A.
    images[1].boxes.append(("horse", [10.0, 30.0, 50.0, 45.0]))
    twin = len(images[1].boxes)
    found = oracle_predictions(images, verb_blind=False, twin_blind=True)[2]
    assert {("ride", 1, twin), ("feed", 1, twin)} <= found and ("ride", 3, twin) not in found
    # Restricting a tagger's pairs to interacting ones drops only pairs that interact with nothing.
    predicted = {1: {("ride", 1, 2)}, 2: {("ride", 1, 2), ("ride", 1, 4), ("feed", 3, 4)}}
    assert restrict_to_interacting(images, predicted) == {1: {("ride", 1, 2)}, 2: {("ride", 1, 2), ("feed", 3, 4)}}
    assert predict(images[:1], {"tagger": "layout"}) == {1: {("ride", 1, 2), ("hold", 1, 2)}}


def test_rtagger_needs_images_and_a_checkpoint(tiny: Path) -> None:
    with pytest.raises(SystemExit):
        main(["--annotations", str(tiny), "--taggers", "rtagger"])


@pytest.mark.slow
def test_reference_figures_on_the_dev_file(shared_data: Path) -> None:
    """The issue's reference figures for the rule baselines, reproduced through the real tag stage."""
    images = load_hicodet(shared_data / "hico-det" / "instances_test2015.dev.json")
    assert len(images) == 1932
    match = match_rows(images, oracle_number=False)
    expected = {"greedy-all": (0.280, 0.230), "nearest": (0.586, 0.471)}
    for tagger, (f1_all, f1_ambiguous) in expected.items():
        everything, ambiguous = evaluate(images, {"tagger": tagger, **NO_CAPS}, match=match)
        assert (round(everything.f1, 3), round(ambiguous.f1, 3)) == (f1_all, f1_ambiguous), tagger
    everything, _ = evaluate(images, {"tagger": "greedy-all", "require_overlap": True, **NO_CAPS}, match=match)
    assert round(everything.f1, 3) == 0.516
    # The default tagger's figures as the README reports them (no caps).
    everything, ambiguous = evaluate(images, {"tagger": "layout", **NO_CAPS}, match=match)
    assert (round(everything.precision, 3), round(everything.f1, 3), round(ambiguous.f1, 3)) == (0.674, 0.639, 0.520)


@pytest.mark.slow
def test_the_rtagger_runs_through_the_benchmark_on_images(tiny: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """A user with R-Tagger weights measures them the same way: --images names the annotation file's folder."""
    import numpy as np
    import torch
    from PIL import Image

    from model import RLIPv2Config, build_model, save_checkpoint

    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for name, (width, height) in (("a.jpg", (100, 100)), ("b.jpg", (200, 100))):
        Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8)).save(images / name, format="JPEG")
    torch.manual_seed(0)
    checkpoint = save_checkpoint(tmp_path / "tagger.pt", build_model(RLIPv2Config.tiny("rtagger")).eval(),
                                 {"entity_labels": ["person", "horse"], "image_min_size": 64, "image_max_size": 96})
    assert main(["--annotations", str(tiny), "--taggers", "rtagger", "--images", str(images),
                 "--checkpoint", str(checkpoint), "--device", "cpu", "--eta", "0"]) == 0
    (line,) = [line for line in capsys.readouterr().out.splitlines() if line.startswith("rtagger ")]
    # η = 0 keeps every scored (pair, text): all 5 true triplets are among them.
    assert " all P " in line and "R 1.000" in line.split("ambiguous")[0]
