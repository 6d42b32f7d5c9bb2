"""The built-in synonym tables and a user's override file.

A table is JSON ``{class name: [synonym, ...]}`` with the dataset's official
class names as keys, in the official order. The same format is what a user
passes as ``match.synonyms_file``: its entries extend the built-in table (a new
class name adds a class), its synonyms win over built-in ones they clash with,
and ``"!form"`` removes a built-in synonym from that class.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from pipeline.config import ConfigError, MatchConfig
from stages.vocab.matcher import EntityMatcher

TABLE_DIR = Path(__file__).resolve().parent
VOCABULARIES: tuple[str, ...] = ("coco", "objects365")

SynonymTable = dict[str, list[str]]


def vocabulary_name(vocabulary: str, dataset_kind: str) -> str:
    """The table a run uses: ``auto`` follows the dataset kind (Objects365 or else COCO)."""
    if vocabulary != "auto":
        return vocabulary
    return "objects365" if dataset_kind == "objects365" else "coco"


def load_table(name: str) -> SynonymTable:
    """A built-in table by name (``coco`` or ``objects365``), in its official class order."""
    if name not in VOCABULARIES:
        raise ConfigError(f"unknown vocabulary {name!r}; known: {', '.join(VOCABULARIES)}")
    return _validated(json.loads((TABLE_DIR / f"{name}.json").read_text(encoding="utf-8")), f"{name}.json")


def read_synonyms_file(path: Path) -> SynonymTable:
    """A user's synonym file, validated; every problem is a ConfigError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"match.synonyms_file not found: {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"match.synonyms_file {path} is not readable JSON: {exc}") from None
    return _validated(data, str(path))


def _validated(data: object, source: str) -> SynonymTable:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a JSON object {{class name: [synonyms]}}")
    table: SynonymTable = {}
    for name, synonyms in data.items():
        if not isinstance(synonyms, list) or not all(isinstance(s, str) for s in synonyms):
            raise ConfigError(f"{source}: synonyms of {name!r} must be a list of strings")
        table[name] = list(synonyms)
    return table


def build_matcher(vocabulary: str, synonyms_file: Path | None = None) -> EntityMatcher:
    """The matcher for a built-in table, optionally extended by a user file (uncached)."""
    layers = [load_table(vocabulary)]
    if synonyms_file is not None:
        layers.append(read_synonyms_file(synonyms_file))
    return EntityMatcher(layers)


def matcher_for(match_cfg: MatchConfig, dataset_kind: str) -> EntityMatcher:
    """The run's matcher, built once per process for a given table and user file version."""
    name = vocabulary_name(match_cfg.vocabulary, dataset_kind)
    user = match_cfg.synonyms_file
    # The file's size and mtime are part of the key so an edited file is re-read.
    stamp = (str(user), *_file_stamp(user)) if user is not None else None
    return _cached_matcher(name, stamp)


def _file_stamp(path: Path) -> tuple[int, int]:
    try:
        stat = Path(path).stat()
    except OSError:
        return (-1, -1)  # read_synonyms_file reports the missing file
    return (stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=16)
def _cached_matcher(name: str, stamp: tuple[str, int, int] | None) -> EntityMatcher:
    return build_matcher(name, Path(stamp[0]) if stamp is not None else None)


@lru_cache(maxsize=256)
def matcher_with_categories(base: EntityMatcher, categories: frozenset[str]) -> EntityMatcher:
    """``base`` extended by dataset categories it lacks, cached per category set."""
    return base.with_categories(categories)
