"""Parameter counts of the full-size RLIPv2 models (ResNet-50 + RoBERTa-base architecture).

Weights are random (nothing is downloaded): RoBERTa-base is built from its
configuration. Prints one line per (N_v, N_ALIF) layout of ParSeD and the
defaults of ParSeDA and the R-Tagger, with a per-component breakdown.

    python -m bench.param_counts [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from model import RLIPv2Config, build_model  # noqa: E402
from model.configuration import CHAR_TOKENIZER  # noqa: E402

# roberta-base's architecture; the vocabulary size fixes the embedding table.
ROBERTA_BASE = {"model_type": "roberta", "vocab_size": 50265, "hidden_size": 768, "num_hidden_layers": 12,
                "num_attention_heads": 12, "intermediate_size": 3072, "max_position_embeddings": 514,
                "type_vocab_size": 1, "layer_norm_eps": 1e-5, "pad_token_id": 1}

COMPONENTS = {
    "backbone": ("backbone.",),
    "text encoder": ("text_encoder.",),
    "ALIF vision layers": ("encoder.layers.",),
    "ALIF fusion": ("encoder.fusion.",),
    "ALIF language layers": ("encoder.language_layers.",),
    "decoders": ("entity_decoder.", "relation_decoder."),
    "heads/queries/other": (),
}


def count(config: RLIPv2Config) -> dict[str, int]:
    model = build_model(config)
    totals = {name: 0 for name in COMPONENTS}
    for name, param in model.named_parameters():
        for component, prefixes in COMPONENTS.items():
            if prefixes and name.startswith(prefixes):
                totals[component] += param.numel()
                break
        else:
            totals["heads/queries/other"] += param.numel()
    totals["total"] = sum(p.numel() for p in model.parameters())
    totals["trainable"] = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return totals


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    torch.set_grad_enabled(False)
    text = {"text_encoder_config": ROBERTA_BASE, "tokenizer": CHAR_TOKENIZER}
    settings = [(f"ParSeD (N_v={nv}, N_ALIF={na})", RLIPv2Config.parsed(alif_vision_layers=nv, alif_blocks=na, **text))
                for nv, na in [(2, 3), (1, 6), (3, 2), (6, 1)]]
    settings += [("ParSeDA (N_v=2, N_ALIF=3)", RLIPv2Config.parseda(**text)),
                 ("R-Tagger (N_v=2, N_ALIF=3)", RLIPv2Config.rtagger(**text))]
    results = {}
    for label, config in settings:
        totals = count(config)
        results[label] = totals
        parts = ", ".join(f"{k} {v / 1e6:.2f}M" for k, v in totals.items() if k not in ("total", "trainable"))
        print(f"{label}: total {totals['total'] / 1e6:.2f}M (trainable {totals['trainable'] / 1e6:.2f}M) | {parts}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
