"""Oracle captioner: the dataset's human captions (COCO ``captions_*.json``).

This is the paper's "oracle" setting, an upper bound on what a captioner can
contribute. The captions file is read once per process into image_id →
captions, ordered by annotation id, so the first ``n_captions`` are stable.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from stages.captioners.base import Captioner, CaptionerLoadError, normalise_caption


@functools.lru_cache(maxsize=4)
def load_captions_index(path: str, mtime_ns: int) -> dict[int, tuple[str, ...]]:
    """image_id → its captions by annotation id; ``mtime_ns`` invalidates the cache on edits."""
    try:
        with open(path, "rb") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        raise CaptionerLoadError(f"captions file not found: {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CaptionerLoadError(f"cannot read captions file {path}: {exc}") from None
    annotations = data.get("annotations") if isinstance(data, dict) else None
    if not isinstance(annotations, list):
        raise CaptionerLoadError(
            f"captions file {path} has no 'annotations' list; expected COCO captions JSON "
            "{'annotations': [{'id', 'image_id', 'caption'}, ...]}"
        )
    keyed: dict[int, list[tuple[int, int, str]]] = {}
    for position, ann in enumerate(annotations):
        if not isinstance(ann, dict):
            continue
        image_id, caption, ann_id = ann.get("image_id"), ann.get("caption"), ann.get("id")
        if not isinstance(image_id, int) or isinstance(image_id, bool) or not isinstance(caption, str):
            continue
        # Entries without an integer id sort after the numbered ones, in file order.
        order = (0, ann_id) if isinstance(ann_id, int) and not isinstance(ann_id, bool) else (1, position)
        keyed.setdefault(image_id, []).append((*order, normalise_caption(caption)))
    return {image_id: tuple(c for *_, c in sorted(entries)) for image_id, entries in keyed.items()}


class OracleCaptioner(Captioner):
    """Looks captions up by image id; reads no pixels."""

    name = "oracle"
    needs_pixels = False

    def __init__(self, captions: dict[int, tuple[str, ...]], n_captions: int, source_name: str) -> None:
        self._captions = captions
        self._n = n_captions
        self._source = source_name

    @classmethod
    def from_file(cls, captions_file: Path | None, n_captions: int) -> "OracleCaptioner":
        if captions_file is None:
            raise CaptionerLoadError(
                "caption.backend='oracle' needs caption.captions_file (a COCO captions_*.json) "
                "for this dataset; only the demo dataset ships its own captions"
            )
        path = Path(captions_file).expanduser().resolve()
        try:
            mtime_ns = path.stat().st_mtime_ns
        except OSError:
            raise CaptionerLoadError(f"captions file not found: {captions_file}") from None
        return cls(load_captions_index(str(path), mtime_ns), n_captions, path.name)

    def has_captions(self) -> bool:
        return any(self._captions.values())

    @property
    def model_id(self) -> str:
        # The file name only: an absolute path would differ between machines for
        # the same labels.
        return self._source

    @property
    def decoding(self) -> dict[str, Any]:
        return {"strategy": "human", "n_captions": self._n, "order": "annotation_id"}

    def caption(self, image_ids: Sequence[int], images: Sequence[Image.Image] | None, seed: int) -> list[list[str]]:
        return [list(self._captions.get(int(i), ())[: self._n]) for i in image_ids]
