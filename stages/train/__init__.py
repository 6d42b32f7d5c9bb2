"""Training RLIPv2 and the R-Tagger from relational shards, and evaluating checkpoints.

    cfg = load_train_config({"sources": [{"path": "runs/coco"}], "output": "train-runs/rlipv2"})
    result = train(cfg)                              # resumes exactly if train-runs/rlipv2 holds a state
    evaluate_checkpoint(result.checkpoint, "hico-det", test_json, images, meta=hico_meta)

Modules: ``sources`` (streaming shard reader, RLIPv2/VG JSON), ``benchmarks``
(HICO-DET / V-COCO / Open Images label spaces, fine-tuning sources),
``sampler`` (seeded, resumable, weighted mixing), ``transforms`` (DETR
augmentation), ``data`` (samples, batches, targets), ``labels`` (LSE, RPL,
RQL), ``optim``, ``checkpointing``, ``distributed`` (torchrun/DDP), ``ray_train`` (Ray Train),
``engine`` (the loop), ``inference`` and ``evaluate``.
"""

from .config import SourceSpec, TrainConfig, load_train_config, load_train_config_file
from .engine import TrainResult, train
from .evaluate import evaluate_checkpoint

__all__ = ["SourceSpec", "TrainConfig", "TrainResult", "evaluate_checkpoint", "load_train_config",
           "load_train_config_file", "train"]
