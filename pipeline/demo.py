"""``relfactory demo``: the whole factory on six bundled photos, offline.

The photos are scikit-image's sample images (shipped in its PyPI package); the
boxes and five captions per photo are relfactory's own (pipeline/demo_data/). The
default captioner is ``oracle`` (those written captions) so the demo needs no
model download; ``--captioner blip`` uses BLIP weights if they are available
locally. After labelling it shows the stage outputs, exports RLIPv2 JSON, and
re-runs with a different η to show that only tag and shard are recomputed.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.cli_label import label_and_report, print_run_summary
from pipeline.config import RunConfig, load_config
from pipeline.datasets import DEMO_DIR
from storage.export import export_rlipv2_json
from storage.inspect import inspect_stage


def demo_config(output: Path, captioner: str = "oracle", eta: float = 0.2) -> RunConfig:
    caption: dict = {"backend": captioner, "n_captions": 5}
    if captioner == "oracle":
        caption["captions_file"] = str(DEMO_DIR / "captions.json")
    return load_config({
        "name": "demo",
        "output": str(output),
        "part_size": 2,
        "workers": 2,
        "dataset": {"kind": "demo"},
        "caption": caption,
        "parse": {"parser": "rules"},
        "tag": {"eta": eta},  # the default tagger (layout): its graded confidences make eta=0.5 keep fewer
    })


def run_demo(output: Path, orchestrator: str = "prefect", captioner: str = "oracle") -> int:
    cfg = demo_config(output, captioner)
    print(f"== labelling the demo photos into {cfg.run_dir} ({orchestrator} flow, Ray executor)")
    label_and_report(cfg, orchestrator)
    run_dir = cfg.run_dir
    for stage in ("parse", "tag", "shard"):
        print()
        print(inspect_stage(run_dir, stage, sample=1 if stage != "shard" else 2))
    dest = run_dir / "export" / "rlipv2.json"
    count = export_rlipv2_json(run_dir, dest)
    print(f"\n== exported {count} images as RLIPv2 JSON: {dest}")
    print("\n== re-labelling with eta=0.5: ingest, caption, parse and match are reused from cache")
    from pipeline.label import run_label

    _, manifest = run_label(demo_config(output, captioner, eta=0.5))
    print_run_summary(manifest)
    print("\n== and re-running the identical configuration does no work:")
    _, manifest = run_label(demo_config(output, captioner, eta=0.5))
    print_run_summary(manifest)
    return 0
