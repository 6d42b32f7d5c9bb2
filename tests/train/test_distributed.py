"""Two DDP ranks on CPU (gloo), as ``torchrun --nproc_per_node 2`` would start them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from stages.train.checkpointing import load_train_state
from tests.net import free_loopback_port
from tests.train.shards import write_demo_run


def _rank_main(rank: int, world: int, port: int, config: dict, out: str) -> None:
    os.environ.update({"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world),
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    import torch.distributed as dist

    from stages.train.config import load_train_config
    from stages.train.distributed import init_distributed
    from stages.train.engine import train

    ctx = init_distributed("cpu")
    try:
        result = train(load_train_config(config), ctx=ctx)
        weights = {k: v.detach().clone() for k, v in result.model.state_dict().items()}
        torch.save({"rank": rank, "step": result.step, "history": result.history, "weights": weights},
                   Path(out) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_ranks_share_the_global_batch_and_stay_in_sync(tmp_path: Path) -> None:
    run = write_demo_run(tmp_path / "runs")
    config = {"preset": "tiny", "sources": [{"path": str(run)}], "output": str(tmp_path / "out"),
              "global_batch": 2, "max_steps": 2, "augment_scale": 0.15, "num_workers": 0, "pseudo_labels": False,
              "device": "cpu", "log_every": 1}
    mp.start_processes(_rank_main, args=(2, free_loopback_port(), config, str(tmp_path)), nprocs=2, join=True,
                       start_method="spawn")
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1)]
    assert [r["step"] for r in ranks] == [2, 2]
    # Each rank trained on its half of the global batch (one image each).
    assert all(row["images"] == 1 for r in ranks for row in r["history"])
    # DDP averaged the gradients: both ranks hold the same weights, and rank 0 saved them.
    assert all(torch.equal(ranks[0]["weights"][k], ranks[1]["weights"][k]) for k in ranks[0]["weights"])
    saved = load_train_state(tmp_path / "out")["model"]
    assert all(torch.equal(saved[k], ranks[0]["weights"][k]) for k in saved)
    assert [r["history"][0]["loss"] for r in ranks][0] != ranks[1]["history"][0]["loss"]  # different images
