"""What every caption parser returns, and the batching loop they all share.

A parser turns a caption into ⟨subject, relation, object⟩ triplets. The spaCy
pipeline is the expensive part, so parsers never call it per caption: captions
go through ``nlp.pipe`` in batches and each parser only reads the finished
``Doc``. One bad caption must not sink its batch, so a failing batch is replayed
caption by caption and only the culprit becomes a :class:`ParseFailure`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import ClassVar

from spacy.language import Language
from spacy.tokens import Doc


@dataclass(frozen=True)
class Triplet:
    """One relation read from a caption; fields mirror ``storage.schemas.TRIPLET``."""

    subject: str  # entity span as written: "two young men"
    subject_head: str  # lemma of the head noun: "man"
    relation: str  # natural phrase: "sitting on"
    relation_lemma: str  # "sit on"
    object: str
    object_head: str

    def as_row(self) -> dict[str, str]:
        # Spelled out: dataclasses.asdict deep-copies and costs a fifth of the rules' time.
        return {
            "subject": self.subject,
            "subject_head": self.subject_head,
            "relation": self.relation,
            "relation_lemma": self.relation_lemma,
            "object": self.object,
            "object_head": self.object_head,
        }


@dataclass(frozen=True)
class ParseFailure:
    """A caption the parser could not handle; ``reason`` is an error-row code."""

    reason: str
    detail: str


ParseResult = list[Triplet] | ParseFailure


class CaptionParser(ABC):
    """Reads triplets from parsed ``Doc`` objects; subclasses implement :meth:`extract`."""

    name: ClassVar[str]

    def __init__(self, nlp: Language) -> None:
        self.nlp = nlp

    @abstractmethod
    def extract(self, doc: Doc) -> list[Triplet]:
        """The triplets of one parsed caption, in reading order."""

    def parse_many(self, texts: Sequence[str], batch_size: int = 256) -> list[ParseResult]:
        """Parse captions in ``nlp.pipe`` batches; one result per text, same order."""
        results: list[ParseResult] = []
        for doc in self._docs(texts, batch_size):
            if isinstance(doc, ParseFailure):
                results.append(doc)
                continue
            try:
                results.append(_unique(self.extract(doc)))
            except Exception as exc:  # one caption's bug must not lose the others
                results.append(_failure(exc))
        return results

    def parse(self, text: str) -> ParseResult:
        return self.parse_many([text], batch_size=1)[0]

    def _docs(self, texts: Sequence[str], batch_size: int) -> Iterator[Doc | ParseFailure]:
        for start in range(0, len(texts), batch_size):
            batch = list(texts[start : start + batch_size])
            try:
                docs: list[Doc | ParseFailure] = list(self.nlp.pipe(batch, batch_size=batch_size))
            except Exception:
                # Replaying one by one isolates the caption that broke the batch.
                docs = [self._doc_or_failure(text) for text in batch]
            yield from docs

    def _doc_or_failure(self, text: str) -> Doc | ParseFailure:
        try:
            return self.nlp(text)
        except Exception as exc:
            return _failure(exc)


def _failure(exc: Exception) -> ParseFailure:
    return ParseFailure("parser_exception", f"{type(exc).__name__}: {exc}")


def _unique(triplets: list[Triplet]) -> list[Triplet]:
    # Two patterns (or a repeated phrase) can state the same fact; a second copy
    # adds nothing downstream. Keep the first, so order still follows the caption.
    return list(dict.fromkeys(triplets))
