"""The ``data_split`` of a dataset, read from its annotation file's name.

The official RLIPv2 reader joins ``data_split`` to the COCO root to find an image
(``coco2017/val2017/000000000139.jpg``), so it must name the image folder of the
annotations, not a generic "train": ``instances_val2017.json`` -> ``val2017``,
``captions_train2014.json`` -> ``train2014``. Objects365 names its splits without a
year (``zhiyuan_objv2_val.json`` -> ``val``, ``objects365_train.json`` -> ``train``),
which are the values the official Objects365 writer records too.
"""

from __future__ import annotations

import re
from pathlib import Path

# COCO style: a split word glued to a year (train2017, val2014, test-dev2017, minival2014).
_YEAR_SPLIT = re.compile(r"(?:^|[_\-.])((?:train|val|test|test-dev|minival|valminusminival)\d{4})(?:$|[_\-.])")
# Objects365 / generic style: a bare split word between separators.
_BARE_SPLIT = re.compile(r"(?:^|[_\-.])(train|val|test|minival)(?:$|[_\-.])")
DEFAULT_SPLIT = "train"  # an annotation file whose name says nothing (the demo, hand-made sets)


def split_from_annotations(path: Path | str) -> str:
    """The split an annotation file's name states, else ``DEFAULT_SPLIT``."""
    stem = Path(path).name.split(".json", 1)[0].lower()
    for pattern in (_YEAR_SPLIT, _BARE_SPLIT):
        found = pattern.search(stem)
        if found:
            return found.group(1)
    return DEFAULT_SPLIT
