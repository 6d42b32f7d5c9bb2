"""Saving and loading a trained RelCLIP classifier.

Only the relation head is learned; the CLIP encoder stays frozen and its text
embeddings are recomputed for whatever vocabulary the classifier is loaded
with. A head trained on one label set (a relfactory run's relation texts)
can therefore score another (Visual Genome's 50 predicates): the texts
decide the classes, as in CLIP.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from model.relclip.classifier import RelCLIPClassifier, TextTables
from model.relclip.clip_encoder import ClipEncoder
from model.relclip.sampling import NegativeDictionary

FORMAT = "relfactory-relclip-v1"


def save_relclip(path: Path | str, classifier: RelCLIPClassifier, *, clip_model: str,
                 predicates: Sequence[str], entities: Sequence[str], extra: dict[str, Any] | None = None) -> Path:
    """Write the head's weights with what is needed to rebuild it (atomically)."""
    from storage.atomic import atomic_write

    payload = {
        "format": FORMAT,
        "mode": classifier.tables.mode,
        "dim": classifier.head.levels[0].out_features,
        "hidden": classifier.head.levels[0].in_features,
        "temperature": classifier.criterion.temperature,
        "clip_model": clip_model,
        "predicates": list(predicates),
        "entities": list(entities),
        "head": classifier.head.state_dict(),
        "extra": dict(extra or {}),
    }
    path = Path(path)
    atomic_write(path, lambda tmp: torch.save(payload, tmp))
    return path


def read_relclip(path: Path | str) -> dict[str, Any]:
    payload = torch.load(Path(path), map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path} is not a RelCLIP classifier checkpoint ({FORMAT})")
    return payload


def load_relclip(path: Path | str, encoder: ClipEncoder, entities: Sequence[str] | None = None,
                 predicates: Sequence[str] | None = None) -> RelCLIPClassifier:
    """The saved head with text tables for ``entities`` × ``predicates`` (default: the training vocabulary).

    The loaded classifier predicts; its loss uses plain InfoNCE (re-training
    should rebuild the negative dictionary with :func:`build_relclip`).
    """
    payload = read_relclip(path)
    if encoder.dim != payload["dim"]:
        raise ValueError(f"{path} was trained on {payload['dim']}-d CLIP features, this encoder gives {encoder.dim}")
    entities = list(entities) if entities is not None else payload["entities"]
    predicates = list(predicates) if predicates is not None else payload["predicates"]
    tables = TextTables.encode(encoder, entities, predicates, payload["mode"])
    classifier = RelCLIPClassifier(tables, NegativeDictionary.uniform(len(predicates)), payload["dim"],
                                   hidden=payload["hidden"], temperature=payload["temperature"])
    classifier.head.load_state_dict(payload["head"])
    return classifier.eval()
