"""Downstream readers, HICO metadata and reproducible few-shot subsets."""

from __future__ import annotations

import json

import numpy as np
import pytest

from storage.downstream import (
    COCO_CATEGORIES,
    VCOCO_ACTIONS,
    VCOCO_VERBS,
    few_shot_indices,
    few_shot_subset,
    load_hico_meta,
    read_hico_qpic,
    read_oi_rlipv2,
    read_vcoco_official,
    read_vcoco_qpic,
)
from tests.evaluation._builders import relation_image

HICO_ENTRY = {
    "file_name": "HICO_train2015_00000042.jpg",
    "annotations": [{"bbox": [1, 2, 30, 40], "category_id": 1}, {"bbox": [5, 6, 70, 80], "category_id": 2}],
    "hoi_annotation": [{"subject_id": 0, "object_id": 1, "category_id": 77}],
}


def write_json(path, data):
    path.write_text(json.dumps(data))
    return path


def test_read_hico_qpic(tmp_path):
    broken = dict(HICO_ENTRY, file_name="b.jpg", hoi_annotation=[{"subject_id": 0, "object_id": 5, "category_id": 1}])
    path = write_json(tmp_path / "hico.json", [HICO_ENTRY, broken])
    with pytest.raises(ValueError, match="outside"):
        read_hico_qpic(path)
    [image] = read_hico_qpic(path, on_invalid="drop")
    assert image.image_id == 42 and image.labels.tolist() == [1, 2]
    assert image.boxes.tolist() == [[1, 2, 30, 40], [5, 6, 70, 80]]
    assert image.relations.tolist() == [[0, 1, 77]]


def test_read_vcoco_qpic_allows_missing_objects_and_oi_uses_rel_annotations(tmp_path):
    entry = dict(HICO_ENTRY, file_name="COCO_val2014_000000000007.jpg")
    entry["hoi_annotation"] = [{"subject_id": 0, "object_id": -1, "category_id": VCOCO_VERBS.index("stand")}]
    [image] = read_vcoco_qpic(write_json(tmp_path / "v.json", [entry]))
    assert image.image_id == 7 and image.relations.tolist() == [[0, -1, 1]]
    with pytest.raises(ValueError):
        read_hico_qpic(tmp_path / "v.json")

    oi = {"file_name": "003e363ce1f302cd.jpg", "annotations": HICO_ENTRY["annotations"],
          "rel_annotations": [{"subject_id": 1, "object_id": 0, "category_id": 16}]}  # fmt: skip
    [image] = read_oi_rlipv2(write_json(tmp_path / "oi.json", [oi]))
    assert image.image_id is None and image.relations.tolist() == [[1, 0, 16]]


def test_vcoco_verbs_are_qpics_29():
    assert len(VCOCO_VERBS) == 29
    assert VCOCO_VERBS[:9] == ("hold_obj", "stand", "sit_instr", "ride_instr", "walk", "look_obj", "hit_instr",
                               "hit_obj", "eat_obj")  # fmt: skip
    assert VCOCO_VERBS[-3:] == ("point_instr", "read_obj", "snowboard_instr")


def test_vcoco_verb_order_matches_qpic_correspondence(shared_data):
    # QPIC's corre_vcoco.npy allows every object for the role-less verbs and only some for the rest.
    corre = np.load(shared_data / "v-coco" / "corre_vcoco.npy")
    role_less = [VCOCO_VERBS.index(v) for v in ("stand", "walk", "run", "smile")]
    assert corre.shape == (29, 80) and (corre[role_less] == 1).all()


def test_coco_table_matches_the_official_categories(shared_data):
    coco = json.loads((shared_data / "coco-mini" / "annotations" / "instances_train2017.json").read_text())
    assert [(c["id"], c["name"]) for c in coco["categories"]] == list(COCO_CATEGORIES)


def test_hico_meta(shared_data, tmp_path):
    meta = load_hico_meta(shared_data / "hico-det" / "hico_meta.json")
    assert meta.num_hois == 600 and len(meta.rare) == 138 and len(meta.non_rare) == 462
    assert meta.verb_texts()[58] == "no interaction" and meta.object_texts()[64] == "potted plant"
    lookup = meta.hoi_lookup()
    assert (lookup >= 0).sum() == 600 and (lookup[0] == -1).all()

    raw = json.loads((shared_data / "hico-det" / "hico_meta.json").read_text())
    raw["rare"] = raw["rare"] + raw["non_rare"][:1]
    with pytest.raises(ValueError, match="partition"):
        load_hico_meta(write_json(tmp_path / "meta.json", raw))


def test_vcoco_official_reader_checks_its_inputs(tmp_path):
    def vcoco_file(actions, hold_object):
        return [
            {"action_name": name, "role_name": list(roles), "image_id": [9], "ann_id": [100],
             "label": [1 if name == "hold" else 0], "role_object_id": [100] + [hold_object] * (len(roles) - 1),
             "include": [[]] * len(roles)}
            for name, roles in actions
        ]  # fmt: skip

    coco = write_json(tmp_path / "c.json", {
        "images": [{"id": 9, "width": 100, "height": 100, "file_name": "x.jpg"}],
        "annotations": [{"id": 100, "image_id": 9, "category_id": 1, "bbox": [0, 0, 10, 10], "area": 100},
                        {"id": 101, "image_id": 9, "category_id": 47, "bbox": [20, 20, 5, 5], "area": 25}],
    })  # fmt: skip
    [image] = read_vcoco_official(write_json(tmp_path / "ok.json", vcoco_file(VCOCO_ACTIONS, 101)), coco)
    assert image.actions[0, 0] == 1 and image.role_boxes[0, 0, 0].tolist() == [20, 20, 24, 24]
    with pytest.raises(ValueError, match="not a valid COCO box"):
        read_vcoco_official(write_json(tmp_path / "bad.json", vcoco_file(VCOCO_ACTIONS, 555)), coco)
    renamed = [("grab", VCOCO_ACTIONS[0][1])] + list(VCOCO_ACTIONS[1:])
    with pytest.raises(ValueError, match="differ from the official"):
        read_vcoco_official(write_json(tmp_path / "renamed.json", vcoco_file(renamed, 101)), coco)


def synthetic_images(n, rng):
    images = []
    for i in range(n):
        k = int(rng.integers(2, 5))
        labels = rng.integers(1, 6, size=k)
        # Predicate 9 is rare: a handful of images only.
        predicate = 9 if i % 97 == 5 else int(rng.integers(0, 4))
        images.append(relation_image(f"{i}.jpg", np.tile([0, 0, 10, 10], (k, 1)), labels, [[0, 1, predicate]]))
    return images


def test_few_shot_subsets_are_seeded_and_cover_every_class():
    images = synthetic_images(1000, np.random.default_rng(0))
    ten = few_shot_indices(images, 10, seed=0)
    assert len(ten) == 100 and np.array_equal(ten, few_shot_indices(images, 10, seed=0))
    assert not np.array_equal(ten, few_shot_indices(images, 10, seed=1))
    one = few_shot_subset(images, 1, seed=3)
    assert len(one) == 10
    assert {int(p) for im in one for p in im.relations[:, 2]} == {0, 1, 2, 3, 9}
    assert {int(c) for im in one for c in im.labels} == {1, 2, 3, 4, 5}
    assert [im.file_name for im in one] == sorted((im.file_name for im in one), key=lambda n: int(n.split(".")[0]))
    with pytest.raises(ValueError):
        few_shot_indices(images, 0, seed=0)
