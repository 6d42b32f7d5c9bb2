"""The training loop: RLIPv2 pre-training, R-Tagger training and fine-tuning.

One step: sample the global batch (rank slice), load and augment the images,
build the batch's label sequence (LSE), targets (with RPL), run the model
under autocast, the set criterion (with RQL), backward, clip, AdamW, the
step-wise schedule. A checkpoint is written at every epoch end (and every
``checkpoint_every_steps``): the resumable state plus a self-contained model
checkpoint (:mod:`model.checkpoint`) that ``evaluate``, fine-tuning and the
``rtagger`` tagger load.

Determinism: the sample order and augmentation are functions of (seed,
step); LSE draws from a generator seeded by (seed, step, rank); dropout and
R-Tagger noise use the global torch generator, saved in the state. So N steps
in one go and N/2 + resume + N/2 give identical weights (on CPU; CUDA kernels
may add their own non-determinism).
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from model.checkpoint import save_checkpoint
from model.text_check import warn_if_labels_collapse

from .checkpointing import apply_train_state, atomic_torch_save, check_fingerprint, load_train_state, save_train_state
from .config import TrainConfig
from .data import Batch, TrainDataset, batch_texts, build_targets, collate
from .distributed import DistContext, all_reduce_mean, init_distributed, unwrap, wrap_model
from .factory import build_training_model, data_fingerprint, open_sources, vocabularies
from .labels import (
    CachedEmbedder,
    SoftRelationCriterion,
    TextEmbedder,
    TextVocabulary,
    extend_sequence,
    frequent_texts,
    model_text_embedder,
    sentence_transformer_embedder,
)
from .optim import build_optimizer, build_scheduler
from .sampler import BatchSamplerView, MixedSampler
from .transforms import AugmentConfig, eval_transform, train_transform

log = logging.getLogger("relfactory.train")

_SALT_LSE = 0x15E
LOG_FILE = "log.jsonl"
EMBEDDINGS_FILE = "relation_embeddings.pt"
MODEL_CHECKPOINT = "checkpoint.pth"

StepHook = Callable[[int, dict[str, float]], None]


@dataclass
class TrainResult:
    output: Path
    step: int  # global steps completed (across resumes)
    steps_per_epoch: int
    total_steps: int
    history: list[dict[str, float]] = field(default_factory=list)  # this invocation's logged steps
    checkpoint: Path | None = None  # the latest model checkpoint
    images_per_second: float = 0.0
    skipped_images: int = 0
    model: nn.Module | None = field(default=None, repr=False)  # the trained module (unwrapped)

    @property
    def final_loss(self) -> float:
        return self.history[-1]["loss"] if self.history else math.nan


def amp_dtype(setting: str, device: torch.device) -> torch.dtype | None:
    if device.type != "cuda" or setting == "off":
        return None
    if setting == "bf16" or (setting == "auto" and torch.cuda.is_bf16_supported()):
        return torch.bfloat16
    return torch.float16


def seed_everything(seed: int) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class RelationEmbeddings:
    """The RPL text embeddings, fixed for the whole run (stored beside the state so a resume reuses them)."""

    def __init__(self, cfg: TrainConfig, model: nn.Module, vocab: TextVocabulary, ctx: DistContext) -> None:
        path = Path(cfg.output) / EMBEDDINGS_FILE
        embed: TextEmbedder = (sentence_transformer_embedder(cfg.pseudo_embedder_path)
                               if cfg.pseudo_embedder == "minilm" else model_text_embedder(model))
        self.embedder = CachedEmbedder(embed)
        if path.is_file():
            saved = torch.load(path, map_location="cpu", weights_only=True)
            self.embedder._cache.update(zip(saved["texts"], saved["vectors"].float()))
        missing = [t for t in vocab.texts if t not in self.embedder._cache]
        if missing:
            self.embedder(missing)
            if ctx.is_main:
                texts = sorted(self.embedder._cache)
                # float32: a resumed run must see exactly the vectors the interrupted one used.
                atomic_torch_save({"texts": texts, "vectors": torch.stack([self.embedder._cache[t] for t in texts])},
                                  path)

    def similarity(self, texts: Sequence[str]) -> Tensor:
        vectors = self.embedder(list(texts))
        return vectors @ vectors.t()


def _to_device(targets: list[dict[str, Tensor]], device: torch.device) -> list[dict[str, Tensor]]:
    return [{k: v.to(device, non_blocking=True) for k, v in t.items()} for t in targets]


def _trim_log(path: Path, last_step: int) -> None:
    """Drop log lines a crashed run wrote after its last checkpoint (they are recomputed)."""
    if not path.is_file():
        return
    kept = [line for line in path.read_text().splitlines() if line.strip() and json.loads(line)["step"] <= last_step]
    path.write_text("".join(line + "\n" for line in kept))


def train(cfg: TrainConfig, *, ctx: DistContext | None = None, on_step: StepHook | None = None) -> TrainResult:
    """Run (or resume) the training described by ``cfg``; returns where it got to."""
    ctx = ctx or init_distributed(cfg.device)
    output = Path(cfg.output)
    if ctx.is_main:
        output.mkdir(parents=True, exist_ok=True)
        (output / "train_config.json").write_text(json.dumps(cfg.model_dump(mode="json"), indent=2) + "\n")
    seed_everything(cfg.seed)

    sources = open_sources(cfg)
    entity_vocab, relation_vocab = vocabularies(sources)
    sampler = MixedSampler([s.part_sizes for s in sources], [s.weight for s in cfg.sources], cfg.global_batch,
                           seed=cfg.seed, rank=ctx.rank, world_size=ctx.world_size)
    steps_per_epoch = sampler.steps_per_epoch
    total_steps = cfg.epochs * steps_per_epoch
    stop_step = min(total_steps, cfg.max_steps or total_steps)

    model = build_training_model(cfg).to(ctx.device)
    config = model.config
    if ctx.is_main:
        warn_if_labels_collapse(model.text_encoder, frequent_texts(entity_vocab) + frequent_texts(relation_vocab),
                                where="training start")
    is_tagger = config.variant == "rtagger"
    criterion = SoftRelationCriterion.for_model(config, cfg.quality_labels)
    if cfg.loss == "rcl":
        from model.relclip.rlipv2_aux import RCLCriterion

        criterion = RCLCriterion.for_model(config, cfg.quality_labels, weight=cfg.rcl_weight)
    optimizer = build_optimizer(model, cfg.lr, cfg.lr_backbone, cfg.lr_text_encoder, cfg.weight_decay)
    scheduler = build_scheduler(optimizer, steps_per_epoch, cfg.lr_drop_epochs, cfg.lr_gamma)
    dtype = amp_dtype(cfg.amp, ctx.device)
    scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)
    rpl = RelationEmbeddings(cfg, model, relation_vocab, ctx) if cfg.pseudo_labels or cfg.loss == "rcl" else None

    fingerprint = data_fingerprint(cfg, sources)
    step = 0
    payload = load_train_state(output) if cfg.resume else None
    if payload is not None:
        check_fingerprint(payload["fingerprint"], fingerprint)
        step = apply_train_state(payload, model=model, optimizer=optimizer, scheduler=scheduler, scaler=scaler)
        log.info("resuming %s at step %d of %d", output, step, total_steps)
        if ctx.is_main:
            _trim_log(output / LOG_FILE, step)
    result = TrainResult(output, step, steps_per_epoch, total_steps, model=model)
    if step >= stop_step:
        latest = output / MODEL_CHECKPOINT
        result.checkpoint = latest if latest.is_file() else None
        return result

    augment = AugmentConfig().scaled(cfg.augment_scale)
    dataset = TrainDataset(sources, train_transform(augment) if cfg.augment else eval_transform(augment),
                           negatives_per_positive=cfg.tagger_negatives if is_tagger else 0.0,
                           max_pairs=config.num_queries)
    # An explicit generator: the loader must not draw from the global torch RNG,
    # or a resumed run would see a different dropout stream.
    batches = BatchSamplerView(sampler, step, stop_step - step)
    loader = DataLoader(dataset, batch_sampler=batches,  # type: ignore[arg-type]
                        collate_fn=collate, num_workers=cfg.num_workers,
                        # Workers must not be forked from a process that runs Prefect (or Ray):
                        # their threads and handlers do not survive a fork.
                        multiprocessing_context="forkserver" if cfg.num_workers else None,
                        generator=torch.Generator().manual_seed(cfg.seed),
                        pin_memory=ctx.device.type == "cuda", persistent_workers=False)
    net = wrap_model(model, ctx)
    net.train()
    warm_tick: float | None = None  # throughput leaves out the first (warm-up) step
    timed_images = 0
    for batch in loader:
        row = _train_step(cfg, net, criterion, optimizer, scaler, dtype, batch, step, ctx, entity_vocab,
                          relation_vocab, rpl, config.num_queries, is_tagger)
        result.skipped_images += len(batch.skipped)
        scheduler.step()
        step += 1
        result.step = step
        if warm_tick is None:
            warm_tick = time.perf_counter()
        elif row is not None:
            timed_images += int(row["images"])
        if row is not None:
            result.history.append(row)
            if ctx.is_main and (step % cfg.log_every == 0 or step == stop_step):
                with (output / LOG_FILE).open("a") as fh:
                    fh.write(json.dumps(row) + "\n")
        epoch_end = step % (steps_per_epoch * cfg.checkpoint_every_epochs) == 0
        if epoch_end or step == stop_step or (cfg.checkpoint_every_steps and step % cfg.checkpoint_every_steps == 0):
            saved = _checkpoint(cfg, model, optimizer, scheduler, scaler, step, steps_per_epoch, fingerprint, ctx,
                                model_checkpoint=epoch_end or step == stop_step)
            result.checkpoint = saved or result.checkpoint
        if on_step is not None and row is not None:
            on_step(step, row)
    if warm_tick is not None and timed_images:
        result.images_per_second = timed_images / (time.perf_counter() - warm_tick)
    result.model = model
    return result


def _train_step(cfg: TrainConfig, net: nn.Module, criterion: SoftRelationCriterion,
                optimizer: torch.optim.Optimizer, scaler: Any, dtype: torch.dtype | None, batch: Batch,
                batch_index: int, ctx: DistContext, entity_vocab: TextVocabulary, relation_vocab: TextVocabulary,
                rpl: RelationEmbeddings | None, num_queries: int, is_tagger: bool) -> dict[str, float] | None:
    """One optimisation step; returns its log row (None when the batch had no readable image)."""
    has_data = float(len(batch) > 0)
    if ctx.distributed:
        # Every rank must take part in the collective ops of a step, or none does.
        has_data = all_reduce_mean(has_data, ctx)
    if has_data < 1.0:
        log.warning("step %d: no readable image in the batch (%s), step skipped", batch_index + 1,
                    ", ".join(f"{s.image_id}: {s.reason}" for s in batch.skipped))
        return None
    rng = np.random.default_rng([cfg.seed, _SALT_LSE, batch_index, ctx.rank])
    entities, relations = batch_texts(batch.samples)
    entity_seq = extend_sequence(entities, entity_vocab, cfg.max_entity_texts, rng, cfg.negative_power)
    relation_seq = extend_sequence(relations, relation_vocab, cfg.max_relation_texts, rng, cfg.negative_power)
    similarity = rpl.similarity(relation_seq) if rpl is not None else None
    if cfg.loss == "rcl":  # RCL's negative dictionaries come from the same similarities
        criterion.similarity = similarity.to(ctx.device) if similarity is not None else None  # type: ignore[attr-defined]
    targets = _to_device(build_targets(batch.samples, entity_seq, relation_seq, num_queries,
                                       similarity if cfg.pseudo_labels else None, cfg.pseudo_threshold), ctx.device)
    images = batch.images.to(ctx.device)
    n = len(batch)
    with torch.autocast(device_type=ctx.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
        outputs = net(images, ([entity_seq] * n, [relation_seq] * n), targets if is_tagger else None)
        losses = criterion(outputs, targets)
    loss = losses["loss"]
    if not torch.isfinite(loss):
        raise FloatingPointError(f"step {batch_index + 1}: loss is {loss.item()}; stopping "
                                 f"(losses: { {k: float(v) for k, v in losses.items()} })")
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    grad_norm = math.nan
    if cfg.clip_max_norm > 0:
        scaler.unscale_(optimizer)
        grad_norm = float(torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.clip_max_norm))
    scaler.step(optimizer)
    scaler.update()
    row = {"step": batch_index + 1, "loss": float(loss.detach()), "lr": optimizer.param_groups[0]["lr"],
           "grad_norm": grad_norm, "images": n, "entity_texts": len(entity_seq),
           "relation_texts": len(relation_seq)}
    for key in ("loss_entity_ce", "loss_relation", "loss_sub_bbox", "loss_obj_bbox", "loss_sub_giou",
                "loss_obj_giou", "loss_rcl"):
        if key in losses:
            row[key] = float(losses[key].detach())
    return row


def _checkpoint(cfg: TrainConfig, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any, scaler: Any,
                step: int, steps_per_epoch: int, fingerprint: dict[str, Any], ctx: DistContext, *,
                model_checkpoint: bool) -> Path | None:
    if not ctx.is_main:
        return None
    output = Path(cfg.output)
    bare = unwrap(model)
    save_train_state(output, model=bare, optimizer=optimizer, scheduler=scheduler, scaler=scaler, step=step,
                     fingerprint=fingerprint)
    if not model_checkpoint:
        return None
    epoch = step / steps_per_epoch
    metadata = {"mode": cfg.mode, "step": step, "epoch": epoch, "sources": [s.name or str(s.path.name)
                                                                           for s in cfg.sources]}
    latest = save_checkpoint(output / MODEL_CHECKPOINT, bare, metadata)
    if cfg.keep_epoch_checkpoints and step % steps_per_epoch == 0:
        save_checkpoint(output / f"checkpoint-epoch{step // steps_per_epoch:04d}.pth", bare, metadata)
    return latest
