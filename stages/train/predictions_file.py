"""Predictions files in QPIC's per-image format, so other tools can score ours and we can score theirs.

Per image, what QPIC's (and RLIPv2's) ``PostProcessHOI`` returns, before the
evaluator's per-image cut:

* ``boxes`` (2Q, 4): x1, y1, x2, y2 pixels of the original image, the Q
  subjects then the Q objects;
* ``labels`` (2Q,): object indices in the benchmark's order (HICO-DET and
  V-COCO: the 80 COCO classes in id order, QPIC's ``valid_obj_ids``; person
  is 0);
* ``verb_scores`` (Q, V): one score per pair and verb (HICO-DET: column j is
  verb id j + 1; V-COCO: QPIC's 29 verbs; Open Images: predicate j);
* ``sub_ids`` / ``obj_ids`` (Q,): the pair's subject and object rows in ``boxes``.

On disk (``.json``, or ``.json.gz`` for a full test set)::

    {"format": "qpic-hoi-predictions", "version": 1, "benchmark": "hico-det",
     "protocol": "qpic", "images": [{"file_name": "HICO_test2015_00000001.jpg",
     "boxes": [...], "labels": [...], "verb_scores": [[...]], "sub_ids": [...], "obj_ids": [...]}, ...]}

Reading also accepts QPIC's own ``preds`` as dumped from its evaluation loop:
a bare JSON list, or a ``torch.save``d list of dicts of tensors (``.pt`` /
``.pth``); entries without ``file_name`` are taken in ground-truth order.
Floats are written with full precision, so a file scores exactly as the run
that wrote it.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from storage.atomic import atomic_write

from .inference import PairPredictions

FORMAT = "qpic-hoi-predictions"
VERSION = 1
FIELDS = ("boxes", "labels", "verb_scores", "sub_ids", "obj_ids")


class PredictionsFileError(ValueError):
    """A predictions file that cannot be read as QPIC-format predictions."""


def _image_entry(file_name: str, pairs: PairPredictions) -> dict[str, Any]:
    return {"file_name": file_name, "boxes": pairs.boxes.tolist(), "labels": pairs.labels.tolist(),
            "verb_scores": pairs.verb_scores.tolist(), "sub_ids": pairs.sub_ids.tolist(),
            "obj_ids": pairs.obj_ids.tolist()}


def write_predictions(path: Path | str, predictions: Mapping[str, PairPredictions], *, benchmark: str,
                      protocol: str) -> Path:
    """Write ``predictions`` (file name -> pairs) as JSON (gzip when ``path`` ends in ``.gz``), atomically."""
    path = Path(path)
    payload = {"format": FORMAT, "version": VERSION, "benchmark": benchmark, "protocol": protocol,
               "images": [_image_entry(name, pairs) for name, pairs in predictions.items()]}
    text = json.dumps(payload).encode("utf-8")

    def write(tmp: Path) -> None:
        if path.suffix == ".gz":
            with gzip.open(tmp, "wb") as fh:
                fh.write(text)
        else:
            tmp.write_bytes(text)

    atomic_write(path, write)
    return path


def _load(path: Path) -> Any:
    if path.suffix in (".pt", ".pth"):
        import torch

        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any unpickling failure is a bad file here
            raise PredictionsFileError(f"cannot read {path.name} as a weights-only torch file: {exc}") from None
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError) as exc:
        raise PredictionsFileError(f"cannot read {path.name} as JSON: {exc}") from None


def _as_array(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor from a QPIC dump
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def _pairs(entry: Mapping[str, Any], where: str) -> PairPredictions:
    missing = [f for f in FIELDS if f not in entry]
    if missing:
        raise PredictionsFileError(f"{where}: missing {', '.join(missing)}")
    try:
        return PairPredictions(*(_as_array(entry[f]) for f in FIELDS))
    except ValueError as exc:
        raise PredictionsFileError(f"{where}: {exc}") from None


def read_predictions(path: Path | str, file_names: Sequence[str] | None = None, *,
                     benchmark: str | None = None) -> tuple[dict[str, PairPredictions], str | None]:
    """(file name -> pairs, the protocol the file declares or None for a bare QPIC dump).

    ``file_names`` (ground-truth order) names entries that carry no
    ``file_name``. A file written for another benchmark than ``benchmark``
    is refused.
    """
    path = Path(path)
    if not path.is_file():
        raise PredictionsFileError(f"predictions file not found: {path}")
    data = _load(path)
    entries: Iterable[Any]
    protocol: str | None = None
    if isinstance(data, dict):
        if data.get("format") != FORMAT:
            raise PredictionsFileError(f"{path.name}: not a {FORMAT} file (format={data.get('format')!r})")
        if int(data.get("version", 0)) > VERSION:
            raise PredictionsFileError(f"{path.name}: version {data['version']} is newer than {VERSION}")
        if benchmark is not None and data.get("benchmark") not in (None, benchmark):
            raise PredictionsFileError(f"{path.name} holds {data['benchmark']} predictions, not {benchmark}")
        entries = data.get("images", [])
        protocol = data.get("protocol")
    elif isinstance(data, list):
        entries = data
    else:
        raise PredictionsFileError(f"{path.name}: expected a JSON object or a list of per-image predictions")
    out: dict[str, PairPredictions] = {}
    for index, entry in enumerate(entries):
        if not isinstance(entry, Mapping):
            raise PredictionsFileError(f"{path.name}: image {index} is not an object")
        name = entry.get("file_name", entry.get("filename"))
        if name is None:
            if file_names is None or index >= len(file_names):
                raise PredictionsFileError(f"{path.name}: image {index} has no file_name and no ground-truth "
                                           "image in that position")
            name = file_names[index]
        if str(name) in out:
            raise PredictionsFileError(f"{path.name}: {name!r} appears twice")
        out[str(name)] = _pairs(entry, f"{path.name}: {name}")
    return out, protocol


__all__ = ["FORMAT", "PredictionsFileError", "read_predictions", "write_predictions"]
