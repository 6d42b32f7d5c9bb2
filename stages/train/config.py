"""Training configuration: one validated object per training run.

Defaults are RLIPv2's pre-training recipe (AdamW, lr 1.41e-4, backbone and
text encoder 1.41e-5, weight decay 1e-4, global batch 64, 20 epochs with the
learning rate x0.1 at epoch 15, gradient clipping 0.1, mixed precision on
GPU). Sources are listed with a weight each (a repeat factor per epoch).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pipeline.config import ConfigError, format_validation_error, read_config_mapping

Mode = Literal["pretrain", "rtagger", "finetune"]
SourceKind = Literal["shards", "rlipv2-json", "vg", "hico-det", "v-coco"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class SourceSpec(_Strict):
    """One training source.

    ``shards``: a labelling run directory (``<output>/<run>``); ``vg`` and
    ``rlipv2-json``: a JSON list in the official RLIPv2 layout; ``hico-det``
    / ``v-coco``: a QPIC-format annotation file (fine-tuning).
    """

    kind: SourceKind = "shards"
    path: Path
    images: Path | None = None  # image root; shards default to the run's dataset config
    weight: float = Field(default=1.0, ge=0.0)
    # A stricter η re-applied at load time (shards and pseudo-label JSON).
    eta: float | None = Field(default=None, ge=0.0, le=1.0)
    dataset: str | None = None  # JSON entries without a ``dataset`` field
    file_names: Path | None = None  # COCO-format annotations mapping image id -> file_name
    few_shot: float | None = Field(default=None, gt=0.0, le=100.0)  # percent of a downstream set
    meta: Path | None = None  # hico-det: hico_meta.json (verb names)
    name: str | None = None
    max_images: int | None = Field(default=None, ge=1)  # shards: the first N images with relations only

    @model_validator(mode="after")
    def _images_for_files(self) -> "SourceSpec":
        if self.kind != "shards" and self.images is None:
            raise ValueError(f"source {self.path}: kind {self.kind!r} needs `images` (the image root)")
        return self


class TrainConfig(_Strict):
    mode: Mode = "pretrain"
    # ``tiny`` builds RLIPv2Config.tiny (CPU-sized, random text encoder); ``small`` the
    # CPU-sized model with the pretrained, packaged MiniLM text encoder; ``full`` the paper's model.
    preset: Literal["tiny", "small", "full"] = "full"
    variant: Literal["parsed", "parseda", "rtagger"] | None = None  # default: rtagger for mode=rtagger
    model: dict[str, Any] = Field(default_factory=dict)  # RLIPv2Config overrides
    init_checkpoint: Path | None = None  # fine-tuning starts from these weights

    sources: list[SourceSpec] = Field(min_length=1)
    output: Path = Path("train-runs/default")
    resume: bool = True  # continue from <output>/train_state.pt when present

    seed: int = 42
    epochs: int = Field(default=20, ge=1)
    lr_drop_epochs: list[int] = Field(default_factory=lambda: [15])
    lr_gamma: float = Field(default=0.1, gt=0.0)
    lr: float = Field(default=1.41e-4, gt=0.0)
    lr_backbone: float = Field(default=1.41e-5, ge=0.0)
    lr_text_encoder: float = Field(default=1.41e-5, ge=0.0)
    weight_decay: float = Field(default=1e-4, ge=0.0)
    global_batch: int = Field(default=64, ge=1)
    clip_max_norm: float = Field(default=0.1, ge=0.0)  # 0 disables clipping
    amp: Literal["auto", "off", "fp16", "bf16"] = "auto"  # auto: bf16/fp16 on GPU, off on CPU
    device: str = "auto"
    num_workers: int = Field(default=2, ge=0)

    max_relations: int = Field(default=100, ge=1)
    max_entity_texts: int = Field(default=333, ge=1)
    max_relation_texts: int = Field(default=167, ge=1)
    negative_power: float = Field(default=1.0, ge=0.0)  # LSE: negatives drawn ∝ frequency ** power
    quality_labels: bool = True  # RQL
    pseudo_labels: bool = True  # RPL
    pseudo_threshold: float = Field(default=0.7, ge=-1.0, le=1.0)
    pseudo_embedder: Literal["minilm", "model"] = "minilm"
    pseudo_embedder_path: str | None = None  # a sentence-transformers folder for ``minilm``
    # ``rcl``: plus RelCLIP's relational contrastive term on the relation logits (model/relclip/rlipv2_aux.py),
    # its negatives drawn with the pseudo_embedder's similarities
    loss: Literal["rlipv2", "rcl"] = "rlipv2"
    rcl_weight: float = Field(default=1.0, ge=0.0)
    tagger_negatives: float = Field(default=1.0, ge=0.0)  # R-Tagger: negative pairs per positive pair
    augment_scale: float = Field(default=1.0, gt=0.0)  # multiplies every DETR resize/crop size
    augment: bool = True

    max_steps: int | None = Field(default=None, ge=1)  # stop early (total steps, across resumes)
    checkpoint_every_epochs: int = Field(default=1, ge=1)
    checkpoint_every_steps: int | None = Field(default=None, ge=1)
    keep_epoch_checkpoints: bool = True
    log_every: int = Field(default=10, ge=1)

    @model_validator(mode="after")
    def _mode_needs(self) -> "TrainConfig":
        if self.mode == "finetune" and self.init_checkpoint is None:
            raise ValueError("mode='finetune' needs init_checkpoint (a pre-trained checkpoint)")
        if self.mode == "rtagger" and self.variant not in (None, "rtagger"):
            raise ValueError("mode='rtagger' trains variant 'rtagger'")
        if self.mode != "rtagger" and self.variant == "rtagger":
            raise ValueError("variant 'rtagger' is trained with mode='rtagger'")
        return self

    @property
    def model_variant(self) -> str:
        return self.variant or ("rtagger" if self.mode == "rtagger" else "parsed")


def load_train_config(data: dict[str, Any]) -> TrainConfig:
    try:
        return TrainConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc)) from None


def load_train_config_file(path: Path) -> TrainConfig:
    return load_train_config(read_config_mapping(path, "training config"))
