"""``relfactory evaluate --predictions FILE``: score a QPIC-format predictions file, no model needed.

    relfactory evaluate --predictions hico-preds.json.gz --benchmark hico-det \\
        --annotations test_hico.json --meta hico_meta.json
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.config import ConfigError


def evaluate_predictions_command(args: argparse.Namespace) -> int:
    from .evaluate import evaluate_predictions, show
    from .predictions_file import PredictionsFileError
    from .sources import SourceError

    if args.checkpoint:
        raise ConfigError("evaluate: give either --checkpoint (run a model) or --predictions (score a file), not both")
    if args.save_predictions:
        raise ConfigError("evaluate: --save-predictions writes a model's predictions; with --predictions the file "
                          "is already there")
    paths = {name: Path(value) for name in ("meta", "coco_instances", "object_names", "predicate_names")
             if (value := getattr(args, name)) is not None}
    try:
        result, path = evaluate_predictions(Path(args.predictions), args.benchmark, Path(args.annotations),
                                            max_images=args.max_images, protocol=args.protocol, **paths)
    except (PredictionsFileError, SourceError) as exc:
        raise ConfigError(str(exc)) from None
    print(show(result))
    print(f"written to {path}")
    return 0


__all__ = ["evaluate_predictions_command"]
