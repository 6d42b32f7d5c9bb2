"""The vectorised evaluators agree with literal one-detection-at-a-time loops on random data.

Random scenes with jittered, duplicated, mislabelled and stray detections (and
tied scores) exercise every branch of the matching rules; ``_reference`` walks
them the way the community tools do (see its docstring).
"""

from __future__ import annotations

import numpy as np
import pytest

from stages.evaluation.hico_det import evaluate_hico_det
from stages.evaluation.oi_sgg import evaluate_oi_sgg
from stages.evaluation.predictions import ImagePredictions
from stages.evaluation.vcoco import ROLE_CLASSES, evaluate_vcoco
from storage.downstream import VCOCO_ACTIONS, VCOCO_VERBS, RelationImage, VcocoImage, load_hico_meta, read_hico_qpic
from tests.evaluation import _reference as ref
from tests.evaluation._builders import relation_image

NAN_BOX = [np.nan] * 4


def random_box(rng, size=200.0):
    x, y = rng.uniform(0, 400, 2)
    w, h = rng.uniform(10, size, 2)
    return [x, y, x + w, y + h]


def jitter(rng, box, scale):
    box = np.asarray(box, dtype=float)
    w, h = box[2] - box[0], box[3] - box[1]
    return (box + rng.normal(0, scale, 4) * [w, h, w, h]).tolist()


def random_scene(rng, file_name, labels_pool, predicates_pool) -> RelationImage:
    n = int(rng.integers(2, 7))
    labels = [labels_pool[0]] + [int(rng.choice(labels_pool)) for _ in range(n - 1)]
    relations = [(0, int(rng.integers(1, n)), int(rng.choice(predicates_pool))) for _ in range(rng.integers(0, 4))]
    if n > 2:
        relations.append((1, 2, int(rng.choice(predicates_pool))))
    return relation_image(file_name, [random_box(rng) for _ in range(n)], labels, relations)


def noisy_predictions(rng, image: RelationImage, labels_pool, predicates_pool, n_extra=6) -> ImagePredictions:
    """Jittered copies of the ground truth (some relabelled), plus strays, with coarse (tied) scores."""
    rows = []
    for s, o, p in image.relations:
        for _ in range(rng.integers(0, 4)):
            predicate = p if rng.random() < 0.8 else rng.choice(predicates_pool)
            sub, obj = jitter(rng, image.boxes[s], 0.15), jitter(rng, image.boxes[o], 0.15)
            rows.append((sub, obj, image.labels[s], image.labels[o], predicate, round(rng.random(), 1)))
    for _ in range(n_extra):
        labels = (labels_pool[0], rng.choice(labels_pool))
        rows.append((random_box(rng), random_box(rng), *labels, rng.choice(predicates_pool), round(rng.random(), 1)))
    rows = [rows[i] for i in rng.permutation(len(rows))]
    return ImagePredictions(*[[row[k] for row in rows] for k in range(6)])


def detection_dicts(preds: ImagePredictions) -> list[dict]:
    return [
        dict(
            sub=tuple(preds.subject_boxes[i]),
            obj=tuple(preds.object_boxes[i]),
            score=float(preds.scores[i]),
            key=(int(preds.subject_categories[i]), int(preds.object_categories[i]), int(preds.predicates[i])),
        )
        for i in range(len(preds))
    ]


def ground_truth_dicts(image: RelationImage) -> list[dict]:
    return [
        dict(
            key=(int(image.labels[s]), int(image.labels[o]), int(p)),
            sub=tuple(image.boxes[s]),
            obj=tuple(image.boxes[o]),
        )
        for s, o, p in image.relations
    ]


def check_hico(gt, preds, meta):
    lookup = meta.hoi_lookup()

    def with_hoi(dicts):
        out = []
        for d in dicts:
            subject, obj, verb = d["key"]
            hoi = lookup[obj, verb] if subject == 1 else -1
            if hoi >= 0:
                out.append(dict(d, hoi=int(hoi)))
        return out

    expected = ref.hico(
        {g.file_name: with_hoi(detection_dicts(preds[g.file_name])) for g in gt},
        {g.file_name: with_hoi(ground_truth_dicts(g)) for g in gt},
        meta.num_hois,
    )
    result = evaluate_hico_det(preds, gt, meta)
    got = {int(name.split()[0]): value / 100 for name, value in result.per_class["AP"].items()}
    assert got.keys() == expected.keys()
    for hoi, value in expected.items():
        assert got[hoi] == pytest.approx(value, abs=1e-12), hoi
    assert result.metrics["mAP_full"] == pytest.approx(100 * np.mean(list(expected.values())))


def test_hico_matches_reference_on_random_scenes(tiny_meta):
    rng = np.random.default_rng(0)
    labels, verbs = [1, 2, 47], [1, 2, 3]
    lookup = tiny_meta.hoi_lookup()
    gt, preds = [], {}
    for i in range(60):
        scene = random_scene(rng, f"{i:04d}.jpg", labels, verbs)
        s, o, v = scene.relations.T
        scene.relations = scene.relations[(lookup[scene.labels[o], v] >= 0) & (scene.labels[s] == 1)]
        gt.append(scene)
        preds[scene.file_name] = noisy_predictions(rng, scene, labels, verbs)
    check_hico(gt, preds, tiny_meta)


def test_hico_matches_reference_on_the_shared_sample(shared_data):
    meta = load_hico_meta(shared_data / "hico-det" / "hico_meta.json")
    gt = read_hico_qpic(shared_data / "hico-det" / "test_hico.subset.json")
    rng = np.random.default_rng(1)
    labels = sorted({int(x) for g in gt for x in g.labels})
    verbs = sorted({int(x) for g in gt for x in g.relations[:, 2]})
    check_hico(gt, {g.file_name: noisy_predictions(rng, g, labels, verbs, n_extra=20) for g in gt}, meta)


@pytest.mark.parametrize("protocol", ["rlipv2", "reldn"])
def test_open_images_matches_reference(protocol):
    rng = np.random.default_rng(2)
    labels, predicates = [5, 6, 7], list(range(6))
    gt = [random_scene(rng, f"{i:04d}.jpg", labels, predicates) for i in range(60)]
    # Up to 150 strays per image, so both the top-50 and the top-100 cuts bite.
    preds = {g.file_name: noisy_predictions(rng, g, labels, predicates, int(rng.integers(0, 150))) for g in gt}
    ref_preds = {name: detection_dicts(p) for name, p in preds.items()}
    ref_gt = {g.file_name: ground_truth_dicts(g) for g in gt}
    result = evaluate_oi_sgg(preds, gt, protocol=protocol, num_predicates=len(predicates))
    if protocol == "rlipv2":
        rel_ap, phr_ap, tp, total = ref.oi_rlipv2(ref_preds, ref_gt, top_k=100)
        _, _, tp_50, _ = ref.oi_rlipv2(ref_preds, ref_gt, top_k=50)
        names = {k: f"{k[0]}-{k[2]}-{k[1]}" for k in rel_ap}
        assert result.metrics["R@50"] == pytest.approx(100 * tp_50 / total)
        assert result.metrics["R@100"] == pytest.approx(100 * tp / total)
    else:
        rel_ap, phr_ap, recall_50 = ref.oi_reldn(ref_preds, ref_gt, len(predicates))
        names = {c: str(c) for c in rel_ap}
        assert result.metrics["R@50"] == pytest.approx(100 * recall_50)
    for kind, expected in (("AP_rel", rel_ap), ("AP_phr", phr_ap)):
        got = result.per_class[kind]
        assert len(got) == len(expected)
        for k, value in expected.items():
            assert got[names[k]] == pytest.approx(100 * value, abs=1e-9), (kind, k)


def random_vcoco_image(rng, index) -> VcocoImage:
    people = int(rng.integers(1, 5))
    actions = (rng.random((people, len(VCOCO_ACTIONS))) < 0.15).astype(np.int8)
    roles = np.full((people, len(VCOCO_ACTIONS), 2, 4), np.nan)
    for p, a in zip(*np.nonzero(actions)):
        for r in range(len(VCOCO_ACTIONS[a][1]) - 1):
            if rng.random() < 0.7:
                roles[p, a, r] = random_box(rng)
    boxes = np.asarray([random_box(rng) for _ in range(people)])
    return VcocoImage(index, f"{index:04d}.jpg", boxes, rng.random(people) < 0.25, actions, roles)


def random_vcoco_detections(rng, image: VcocoImage) -> list[dict]:
    """Role detections on jittered people: no box, an all-zero box, a jittered true role box or a stray box."""
    detections = []
    positives = [(p, c) for c, (a, _) in enumerate(ROLE_CLASSES) for p in np.flatnonzero(image.actions[:, a] == 1)]
    for _ in range(int(rng.integers(0, 25))):
        if positives and rng.random() < 0.6:
            p, c = positives[rng.integers(len(positives))]
        else:
            p, c = int(rng.integers(len(image.person_boxes))), int(rng.integers(len(ROLE_CLASSES)))
        a, r = ROLE_CLASSES[c]
        truth = image.role_boxes[p, a, r]
        draw = rng.random()
        if draw < 0.3:
            obj = None
        elif draw < 0.4:
            obj = [0.0, 0.0, 0.0, 0.0]
        elif draw < 0.8 and not np.isnan(truth).all():
            obj = jitter(rng, truth, 0.1)
        else:
            obj = random_box(rng)
        subject = jitter(rng, image.person_boxes[p], 0.1)
        detections.append(dict(cls=c, sub=subject, obj=obj, score=round(rng.random(), 1)))
    return detections


def test_vcoco_matches_reference():
    rng = np.random.default_rng(3)
    verb_of_class = [VCOCO_VERBS.index(f"{VCOCO_ACTIONS[a][0]}_{VCOCO_ACTIONS[a][1][r + 1]}") for a, r in ROLE_CLASSES]
    images = [random_vcoco_image(rng, i) for i in range(50)]
    ref_preds = {image.file_name: random_vcoco_detections(rng, image) for image in images}
    preds = {
        name: ImagePredictions(
            np.asarray([d["sub"] for d in dets]).reshape(-1, 4),
            np.asarray([NAN_BOX if d["obj"] is None else d["obj"] for d in dets]).reshape(-1, 4),
            [1] * len(dets),
            [-1] * len(dets),
            [verb_of_class[d["cls"]] for d in dets],
            [d["score"] for d in dets],
        )
        for name, dets in ref_preds.items()
    }
    result = evaluate_vcoco(preds, images)
    for scenario in (1, 2):
        expected = ref.vcoco(ref_preds, images, ROLE_CLASSES, scenario)
        for c, (name, value) in enumerate(result.per_class[f"AP_S{scenario}"].items()):
            if c in expected:
                assert value == pytest.approx(100 * expected[c], abs=1e-9), name
            else:
                assert np.isnan(value), name
