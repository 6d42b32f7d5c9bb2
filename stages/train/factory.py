"""Build what a training run needs from its config: sources, model, label vocabularies."""

from __future__ import annotations

from collections import Counter
from typing import Sequence

from torch import nn

from model import RLIPv2Config, build_model
from model.checkpoint import load_checkpoint

from .benchmarks import DownstreamSource, label_space
from .config import SourceSpec, TrainConfig
from .labels import TextVocabulary
from .sources import JsonSource, ShardSource, Source, load_file_names


def open_source(spec: SourceSpec, cfg: TrainConfig) -> Source:
    if spec.kind == "shards":
        return ShardSource(spec.path, spec.images, eta=spec.eta, max_relations=cfg.max_relations, name=spec.name,
                           max_images=spec.max_images)
    assert spec.images is not None  # SourceSpec validation
    if spec.kind in ("vg", "rlipv2-json"):
        dataset = spec.dataset or ("vg" if spec.kind == "vg" else "coco")
        file_names = load_file_names(spec.file_names) if spec.file_names else None
        return JsonSource(spec.path, spec.images, dataset=dataset, eta=spec.eta, max_relations=cfg.max_relations,
                          file_names=file_names, name=spec.name)
    space = label_space(spec.kind, meta=spec.meta)
    return DownstreamSource(spec.kind, spec.path, spec.images, space, few_shot=spec.few_shot, seed=cfg.seed,
                            name=spec.name)


def open_sources(cfg: TrainConfig) -> list[Source]:
    return [open_source(spec, cfg) for spec in cfg.sources]


def model_config(cfg: TrainConfig) -> RLIPv2Config:
    variant = cfg.model_variant
    if cfg.preset == "tiny":
        return RLIPv2Config.tiny(variant, **cfg.model)  # type: ignore[arg-type]
    if cfg.preset == "small":
        return RLIPv2Config.small(variant, **cfg.model)  # type: ignore[arg-type]
    preset = {"parsed": RLIPv2Config.parsed, "parseda": RLIPv2Config.parseda, "rtagger": RLIPv2Config.rtagger}
    return preset[variant](**cfg.model)


def build_training_model(cfg: TrainConfig) -> nn.Module:
    """A fresh model from the config, or the weights of ``init_checkpoint`` (fine-tuning)."""
    if cfg.init_checkpoint is not None:
        model, _ = load_checkpoint(cfg.init_checkpoint)
        if cfg.mode == "rtagger" and model.config.variant != "rtagger":
            raise ValueError(f"{cfg.init_checkpoint} holds a {model.config.variant!r} model, not an R-Tagger")
        return model
    return build_model(model_config(cfg))


def vocabularies(sources: Sequence[Source]) -> tuple[TextVocabulary, TextVocabulary]:
    entities: Counter = Counter()
    relations: Counter = Counter()
    for source in sources:
        entities.update(source.entity_counts)
        relations.update(source.relation_counts)
    return TextVocabulary.from_counts(entities), TextVocabulary.from_counts(relations)


def data_fingerprint(cfg: TrainConfig, sources: Sequence[Source]) -> dict:
    """What must not change between a run and its resume for the sample order to stay the same."""
    return {
        "sources": [[s.name, [int(n) for n in s.part_sizes]] for s in sources],
        "weights": [spec.weight for spec in cfg.sources],
        "global_batch": cfg.global_batch,
        "seed": cfg.seed,
        "mode": cfg.mode,
    }
