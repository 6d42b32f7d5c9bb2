"""Inference protocols (QPIC/RLIPv2 vs relfactory's own) and QPIC-format predictions files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from stages.evaluation import evaluate_hico_det
from stages.train.evaluate import evaluate_checkpoint, evaluate_predictions, load_benchmark, to_benchmark_predictions
from stages.train.inference import PairPredictions, pair_predictions, postprocess
from stages.train.predictions_file import PredictionsFileError, read_predictions, write_predictions

# Entities [person, cup, horse, <no object>]; relations [hold, ride].
# The benchmark defines (cup, hold) and (horse, ride) only.
DEFINED = np.array([[False, False], [True, False], [False, True]])
PERSON = 0


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


def _hand_made() -> dict:
    """Three queries, built so that the two protocols disagree.

    q0: object cup (p=0.9), verbs hold 0.5 / ride 0.9 -> "ride cup" is undefined but scores highest.
    q1: object horse (p=0.8), verbs hold 0.6 / ride 0.7.
    q2: a subject the model thinks is a cup, not a person; object cup (p=0.7), hold 0.75.
    """
    def entity(probs: list[float]) -> list[float]:
        return [math.log(p) for p in probs]

    sub = torch.tensor([[entity([0.9, 0.03, 0.03, 0.04]), entity([0.5, 0.2, 0.2, 0.1]),
                         entity([0.1, 0.8, 0.05, 0.05])]])
    obj = torch.tensor([[entity([0.03, 0.9, 0.03, 0.04]), entity([0.1, 0.05, 0.8, 0.05]),
                         entity([0.1, 0.7, 0.1, 0.1])]])
    verb = torch.tensor([[[_logit(0.5), _logit(0.9)], [_logit(0.6), _logit(0.7)], [_logit(0.75), _logit(0.1)]]])
    boxes = torch.tensor([[[0.5, 0.5, 0.2, 0.2], [0.3, 0.3, 0.2, 0.2], [0.7, 0.7, 0.2, 0.2]]])
    return {"pred_sub_logits": sub, "pred_obj_logits": obj, "pred_verb_logits": verb,
            "pred_sub_boxes": boxes, "pred_obj_boxes": boxes.flip(1),
            "entity_pad_mask": torch.zeros(1, 4, dtype=torch.bool),
            "relation_pad_mask": torch.zeros(1, 2, dtype=torch.bool), "no_object_index": torch.tensor([3])}


def _triplets(pred) -> list[tuple[int, int, int, float]]:  # type: ignore[no-untyped-def]
    return [(int(s), int(p), int(o), round(float(x), 4)) for s, p, o, x in
            zip(pred.subject_labels, pred.predicates, pred.object_labels, pred.scores)]


def test_qpic_drops_undefined_pairs_before_the_cut_and_scores_verb_times_object() -> None:
    (qpic,) = postprocess(_hand_made(), [(100, 100)], top_k=2, protocol="qpic", subject_label=PERSON,
                          defined=DEFINED)
    # Subject fixed to person, score = verb x p(object) (the subject's probability plays no part):
    # q1 "ride horse" 0.7 x 0.8, q2 "hold cup" 0.75 x 0.7; the undefined "ride cup" never takes a slot.
    assert _triplets(qpic) == [(PERSON, 1, 2, 0.56), (PERSON, 0, 1, 0.525)]

    (ours,) = postprocess(_hand_made(), [(100, 100)], top_k=2, protocol="all-entities")
    # relfactory's protocol cuts first, over every relation, and scores verb x subject x object:
    # q0 "person ride cup" (0.9^3, undefined) and q2 "cup hold cup" (0.75 x 0.8 x 0.7: the subject
    # keeps its own label) fill the two slots.
    assert _triplets(ours) == [(PERSON, 1, 1, 0.729), (1, 0, 1, 0.42)]
    # What a HICO-DET evaluator counts: defined (object, verb) pairs with a person subject.
    counted = {"qpic": [t for t in _triplets(qpic) if t[0] == PERSON and DEFINED[t[2], t[1]]],
               "all-entities": [t for t in _triplets(ours) if t[0] == PERSON and DEFINED[t[2], t[1]]]}
    assert len(counted["qpic"]) == 2 and len(counted["all-entities"]) == 0


def test_qpic_pairs_are_qpic_postprocess_output() -> None:
    (pairs,) = pair_predictions(_hand_made(), [(100, 100)], "qpic", PERSON)
    assert pairs.labels.tolist() == [PERSON] * 3 + [1, 2, 1]
    assert pairs.sub_ids.tolist() == [0, 1, 2] and pairs.obj_ids.tolist() == [3, 4, 5]
    assert np.allclose(pairs.verb_scores, [[0.45, 0.81], [0.48, 0.56], [0.525, 0.07]], atol=1e-5)
    assert pairs.boxes[0].tolist() == pytest.approx([40.0, 40.0, 60.0, 60.0])
    with pytest.raises(ValueError, match="subject_label"):
        postprocess(_hand_made(), [(100, 100)], protocol="qpic")


def test_ties_keep_query_order_as_qpic_stable_sort() -> None:
    boxes = np.tile([[0.0, 0.0, 10.0, 10.0]], (4, 1))
    pairs = PairPredictions(boxes, [0, 0, 1, 2], [[0.5, 0.2], [0.5, 0.5]], [0, 1], [2, 3])
    ranked = pairs.triplets(None, top_k=3)
    # Flattened query-major: (q0, hold), (q1, hold), (q1, ride) all 0.5, in that order.
    assert list(zip(ranked.object_labels.tolist(), ranked.predicates.tolist())) == [(1, 0), (2, 0), (2, 1)]


def _pairs(seed: int) -> PairPredictions:
    rng = np.random.default_rng(seed)
    boxes = rng.uniform(0, 300, (8, 4))
    boxes[:, 2:] += boxes[:, :2]
    return PairPredictions(boxes, rng.integers(0, 80, 8), rng.random((4, 117)), np.arange(4), np.arange(4, 8))


@pytest.mark.parametrize("suffix", [".json", ".json.gz"])
def test_predictions_file_round_trips_exactly(tmp_path: Path, suffix: str) -> None:
    written = {"a.jpg": _pairs(0), "b.jpg": _pairs(1)}
    path = write_predictions(tmp_path / f"preds{suffix}", written, benchmark="hico-det", protocol="qpic")
    read, protocol = read_predictions(path, benchmark="hico-det")
    assert protocol == "qpic" and list(read) == ["a.jpg", "b.jpg"]
    for name, pairs in written.items():
        for field in ("boxes", "labels", "verb_scores", "sub_ids", "obj_ids"):
            assert np.array_equal(getattr(read[name], field), getattr(pairs, field))
    with pytest.raises(PredictionsFileError, match="not v-coco"):
        read_predictions(path, benchmark="v-coco")


def test_a_bare_qpic_dump_is_read_in_ground_truth_order(tmp_path: Path) -> None:
    dump = [{k: torch.as_tensor(getattr(_pairs(i), k)) for k in ("boxes", "labels", "verb_scores", "sub_ids",
                                                                "obj_ids")} for i in range(2)]
    torch.save(dump, tmp_path / "qpic_preds.pt")
    read, protocol = read_predictions(tmp_path / "qpic_preds.pt", ["x.jpg", "y.jpg"])
    assert protocol is None and list(read) == ["x.jpg", "y.jpg"]
    assert np.allclose(read["y.jpg"].verb_scores, _pairs(1).verb_scores)
    with pytest.raises(PredictionsFileError, match="no file_name"):
        read_predictions(tmp_path / "qpic_preds.pt", ["x.jpg"])
    (tmp_path / "broken.json").write_text(json.dumps([{"boxes": [[0, 0, 1, 1]]}]))
    with pytest.raises(PredictionsFileError, match="missing"):
        read_predictions(tmp_path / "broken.json", ["x.jpg"])


def _gt_pairs(bench, images) -> dict[str, PairPredictions]:  # type: ignore[no-untyped-def]
    """Predictions built from the ground truth (some exact, some shifted), so the mAP is neither 0 nor 100."""
    rng = np.random.default_rng(0)
    out = {}
    space = bench.space
    for image in images:
        rows = image.relations
        q = len(rows)
        boxes = np.concatenate((image.boxes[rows[:, 0]], image.boxes[rows[:, 1]])).astype(np.float64)
        boxes[rng.random(2 * q) < 0.3] += 40.0  # some pairs misplaced
        labels = np.concatenate(([space.subject_index] * q,
                                 [space.entity_ids.index(int(c)) for c in image.labels[rows[:, 1]]]))
        scores = rng.random((q, len(space.relation_ids))) * 0.5
        scores[np.arange(q), [space.relation_ids.index(int(v)) for v in rows[:, 2]]] += 0.5
        out[image.file_name] = PairPredictions(boxes, labels, scores, np.arange(q), np.arange(q, 2 * q))
    return out


def test_hico_predictions_file_scores_the_same_as_in_memory(shared_data: Path, tmp_path: Path) -> None:
    from storage.downstream import load_hico_meta, read_hico_qpic

    hico = shared_data / "hico-det"
    annotations, meta = hico / "test_hico.subset.json", hico / "hico_meta.json"
    bench = load_benchmark("hico-det", annotations, meta=meta, max_images=20)
    pairs = _gt_pairs(bench, read_hico_qpic(annotations)[:20])
    direct = evaluate_hico_det(to_benchmark_predictions(pairs, bench, "qpic"), read_hico_qpic(annotations)[:20],
                               load_hico_meta(meta))
    assert 0 < direct.metrics["mAP_full"] < 100
    path = write_predictions(tmp_path / "preds.json.gz", pairs, benchmark="hico-det", protocol="qpic")
    from_file, written = evaluate_predictions(path, "hico-det", annotations, meta=meta, max_images=20)
    assert from_file.metrics == direct.metrics and from_file.counts == direct.counts
    assert written.name == "preds.json.gz.eval-hico-det.json"


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from model import RLIPv2Config, build_model
    from model.checkpoint import save_checkpoint

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pth"
    return save_checkpoint(path, build_model(RLIPv2Config.tiny("parsed")), {"mode": "pretrain"})


def test_checkpoint_predictions_round_trip(shared_data: Path, tiny_checkpoint: Path, tmp_path: Path) -> None:
    from .test_evaluate import _hico_images

    images = _hico_images(shared_data, tmp_path / "hico", 3)
    hico = shared_data / "hico-det"
    saved = tmp_path / "tiny-preds.json"
    result, _ = evaluate_checkpoint(tiny_checkpoint, "hico-det", hico / "test_hico.subset.json", images,
                                    meta=hico / "hico_meta.json", max_images=3, size=64, max_size=96,
                                    save_predictions=saved)
    again, _ = evaluate_predictions(saved, "hico-det", hico / "test_hico.subset.json", meta=hico / "hico_meta.json",
                                    max_images=3)
    assert result.counts.pop("unreadable_images") == 0
    assert again.counts == result.counts and result.counts["detections"] > 0
    assert json.dumps(again.metrics) == json.dumps(result.metrics)
