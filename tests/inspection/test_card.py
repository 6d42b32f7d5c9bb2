"""The run's dataset card follows the Hugging Face card metadata conventions and describes its shards.

The Hub validates card YAML only online (``DatasetCard.validate`` posts to the Hub),
so the allowed values are written down here. Sources: ``huggingface_hub``'s
``DatasetCardData`` documentation (annotations/language creators, multilinguality,
size categories, source datasets) and the Hub's dataset-card spec
(https://github.com/huggingface/hub-docs/blob/main/datasetcard.md: ``configs`` /
``data_files``, split names, task categories, licence identifiers).
"""

from __future__ import annotations

import hashlib
import re

import pyarrow.parquet as pq
import pytest

from storage.schemas import SHARD

ANNOTATIONS_CREATORS = {"found", "crowdsourced", "expert-generated", "machine-generated", "no-annotation", "other"}
LANGUAGE_CREATORS = {"found", "crowdsourced", "expert-generated", "machine-generated", "other"}
MULTILINGUALITY = {"monolingual", "multilingual", "translation", "other"}
SIZE_CATEGORIES = {"n<1K", "1K<n<10K", "10K<n<100K", "100K<n<1M", "1M<n<10M", "10M<n<100M", "100M<n<1B",
                   "1B<n<10B", "10B<n<100B", "100B<n<1T", "n>1T", "other"}
# The Hub's computer-vision task categories (the card may only use these here).
VISION_TASK_CATEGORIES = {"object-detection", "image-classification", "image-segmentation", "image-to-text",
                          "zero-shot-object-detection", "zero-shot-image-classification", "image-text-to-text",
                          "visual-question-answering", "image-feature-extraction", "mask-generation"}
# Licence identifiers of the Hub relevant to detection datasets.
LICENSES = {"cc-by-4.0", "cc-by-nc-4.0", "cc-by-sa-4.0", "cc0-1.0", "mit", "apache-2.0", "other", "unknown"}
SPLIT_NAME = re.compile(r"^\w+(\.\w+)*$")
SOURCE_DATASET = re.compile(r"^(original|extended|extended\|[\w.-]+(/[\w.-]+)?)$")


def _card_metadata(readme):
    hub = pytest.importorskip("huggingface_hub")
    card = hub.DatasetCard.load(readme)  # parses the front matter the way the Hub's client does
    assert isinstance(card.data, hub.DatasetCardData)
    return card.data.to_dict(), card.text


def test_card_metadata_follows_the_hub_conventions(coco_runs):
    readme = coco_runs.oracle / "README.md"
    meta, body = _card_metadata(readme)
    assert meta["annotations_creators"] == ["machine-generated"]
    assert set(meta["language_creators"]) <= LANGUAGE_CREATORS and meta["language_creators"] == ["crowdsourced"]
    assert set(meta["multilinguality"]) <= MULTILINGUALITY
    assert meta["size_categories"] == ["n<1K"] and set(meta["size_categories"]) <= SIZE_CATEGORIES
    assert meta["source_datasets"] == ["extended|coco"]
    assert all(SOURCE_DATASET.match(s) for s in meta["source_datasets"])
    assert set(meta["task_categories"]) <= VISION_TASK_CATEGORIES
    assert meta["license"] in LICENSES
    assert meta["language"] == ["en"]
    assert set(meta["annotations_creators"]) <= ANNOTATIONS_CREATORS


def test_card_configs_point_at_exactly_the_committed_shard_files(coco_runs):
    meta, _ = _card_metadata(coco_runs.oracle / "README.md")
    (config,) = meta["configs"]
    assert config["config_name"] == "default"
    (files,) = config["data_files"]
    assert SPLIT_NAME.match(files["split"]) and files["split"] == "train2017"  # instances_train2017.json
    committed = sorted(str(p.relative_to(coco_runs.oracle)) for p in (coco_runs.oracle / "shard").glob("part-*.parquet"))
    assert sorted(files["path"]) == committed and committed
    rows = 0
    for path in files["path"]:
        table = pq.read_table(coco_runs.oracle / path)
        assert table.schema.remove_metadata().equals(SHARD.remove_metadata())
        rows += table.num_rows
    assert rows == 80


def test_card_records_how_the_labels_were_made(coco_runs):
    meta, body = _card_metadata(coco_runs.strict / "README.md")
    made = meta["relfactory"]
    assert made["eta"] == 0.5 and made["tagger"] == "greedy" and made["captioner"] == "oracle"
    assert made["decoding"]["strategy"] == "human" and made["caption_model"] is None \
        and made["captions_file"] == "captions_train2017.json"
    assert made["manifest_sha256"] == hashlib.sha256((coco_runs.strict / "manifest.json").read_bytes()).hexdigest()
    relations = sum(len(r["relationships"]) for f in sorted((coco_runs.strict / "shard").glob("part-*.parquet"))
                    for r in pq.read_table(f).to_pylist())
    assert f"relations (confidence > η = 0.5): {relations}" in body
    assert "images (shard rows): 80" in body
