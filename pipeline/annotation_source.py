"""Read a COCO-format annotation file's three lists, in memory or streamed.

COCO's ``instances_train2017.json`` (450 MB) loads comfortably; Objects365's
``zhiyuan_objv2_train.json`` (several GB, 25 M boxes) does not fit a 24 GB machine
as Python objects. Files above ``STREAM_BYTES`` are therefore streamed with ijson:
one pass reads the images and categories and checks the file's layout, a second
pass yields the annotations one at a time. Either way the caller sees the same
iterators and the same :class:`DatasetError` messages.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ijson

STREAM_BYTES = 256 << 20
LISTS = ("images", "annotations", "categories")


class DatasetError(ValueError):
    """The dataset as a whole is unusable (missing file, invalid JSON, wrong layout)."""

    user_facing = True


class AnnotationSource:
    """The ``images``, ``categories`` and ``annotations`` lists of one annotation file."""

    def __init__(self, path: Path, stream_bytes: int | None = None) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise DatasetError(f"annotation file not found: {self.path}")
        limit = STREAM_BYTES if stream_bytes is None else stream_bytes
        self.streamed = self.path.stat().st_size > limit
        self.data: dict[str, Any] | None = None
        if self.streamed:
            self.images, self.categories = self._scan_streamed()
        else:
            self.data = self._load()
            self.images, self.categories = self.data["images"], self.data["categories"]

    def annotations(self) -> Iterator[Any]:
        if self.data is not None:
            yield from self.data["annotations"]
            return
        with self.path.open("rb") as fh:
            try:
                yield from ijson.items(fh, "annotations.item", use_float=True)
            except ijson.JSONError as exc:
                raise self._invalid(exc) from None

    def _load(self) -> dict[str, Any]:
        try:
            with self.path.open("rb") as fh:
                data = json.load(fh)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"annotation file {self.path.name} is not valid JSON: {exc.msg} at line "
                               f"{exc.lineno} column {exc.colno}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise DatasetError(f"cannot read annotation file {self.path.name}: {exc}") from None
        if not isinstance(data, dict):
            raise DatasetError(f"annotation file {self.path.name}: expected a JSON object at the top level")
        for key in LISTS:
            if not isinstance(data.get(key), list):
                raise DatasetError(f"annotation file {self.path.name}: missing or non-list key {key!r}")
        return data

    def _scan_streamed(self) -> tuple[list[Any], list[Any]]:
        """One pass: collect images and categories, and check the top-level layout."""
        collected: dict[str, list[Any]] = {"images": [], "categories": []}
        top_level: dict[str, str] = {}
        builder: ijson.ObjectBuilder | None = None
        target = ""
        with self.path.open("rb") as fh:
            try:
                for prefix, event, value in ijson.parse(fh, use_float=True):
                    if prefix == "" and event != "map_key":
                        if event not in ("start_map", "end_map"):
                            raise DatasetError(f"annotation file {self.path.name}: expected a JSON object at the top level")
                        continue
                    if prefix in LISTS and prefix not in top_level:
                        top_level[prefix] = event
                    if builder is not None:
                        builder.event(event, value)
                        # The item's own closing event carries its prefix; nested ones do not.
                        if prefix == target and event in ("end_map", "end_array"):
                            collected[target.split(".")[0]].append(builder.value)
                            builder = None
                    elif prefix in ("images.item", "categories.item"):
                        if event in ("start_map", "start_array"):
                            builder, target = ijson.ObjectBuilder(), prefix
                            builder.event(event, value)
                        else:  # a scalar where an object belongs: kept, the reader rejects it
                            collected[prefix.split(".")[0]].append(value)
            except ijson.JSONError as exc:
                raise self._invalid(exc) from None
        for key in LISTS:
            if top_level.get(key) != "start_array":
                raise DatasetError(f"annotation file {self.path.name}: missing or non-list key {key!r}")
        return collected["images"], collected["categories"]

    def _invalid(self, exc: Exception) -> DatasetError:
        return DatasetError(f"annotation file {self.path.name} is not valid JSON: {exc}")
