"""A predicate classifier on frozen CLIP features, trained with relational contrastive learning.

The relation head reads the CLIP embeddings of the subject, object and union
crops of a pair and produces one visual relation embedding per contrast
level (two for ``dual``: subject-predicate and predicate-object). Each level's
embedding starts as the union crop's own embedding (the head's output layers
are zero-initialised), so an untrained classifier is CLIP's zero-shot
prompt matcher and training only has to learn the correction.

Text embeddings come from the frozen CLIP text encoder, once, for every
(entity class, predicate) text the classifier can be asked about:

* ``dual``: "{subject} {predicate}" and "{predicate} {object}";
* ``triple``: "{subject} {predicate} {object}";
* ``unary``: "{predicate}".

The predicted predicate maximises the summed levels' logits
(:meth:`model.relclip.loss.RelationalContrastiveLoss.predicate_scores`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from model.relclip.clip_encoder import ClipEncoder
from model.relclip.data import RelationFeatures, RelationSample, extract_features, pair_truth
from model.relclip.loss import DEFAULT_TEMPERATURE, ContrastMode, RelationalContrastiveLoss
from model.relclip.sampling import (
    SYNONYM_EPSILON,
    NegativeDictionary,
    build_negative_dictionary,
    predicate_similarity,
)

SUBJECT_PREDICATE = "{subject} {predicate}"
PREDICATE_OBJECT = "{predicate} {object}"
TRIPLE = "{subject} {predicate} {object}"


@dataclass
class TextTables:
    """Frozen text embeddings indexed by entity class and predicate."""

    mode: ContrastMode
    subject_predicate: Tensor | None = None  # (C, R, D)
    predicate_object: Tensor | None = None  # (C, R, D)
    triple: Tensor | None = None  # (K, R, D) for the K encoded (subject, object) class pairs
    triple_index: Tensor | None = None  # (C, C) long: row of ``triple``, -1 for a pair never encoded
    unary: Tensor | None = None  # (R, D)

    @classmethod
    def encode(cls, encoder: ClipEncoder, entity_classes: Sequence[str], predicates: Sequence[str],
               mode: ContrastMode, class_pairs: Sequence[tuple[int, int]] | None = None) -> "TextTables":
        """``class_pairs`` limits ``triple`` texts to these (subject, object) classes (default: all C²)."""
        classes, preds = list(entity_classes), list(predicates)
        c, r = len(classes), len(preds)
        if mode == "dual":
            sp = encoder.encode_texts([SUBJECT_PREDICATE.format(subject=s, predicate=p)
                                       for s in classes for p in preds])
            po = encoder.encode_texts([PREDICATE_OBJECT.format(predicate=p, object=o)
                                       for o in classes for p in preds])
            return cls(mode, subject_predicate=sp.reshape(c, r, -1), predicate_object=po.reshape(c, r, -1))
        if mode == "triple":
            pairs = (sorted(set(class_pairs)) if class_pairs is not None
                     else [(s, o) for s in range(c) for o in range(c)])
            texts = [TRIPLE.format(subject=classes[s], predicate=p, object=classes[o]) for s, o in pairs for p in preds]
            index = torch.full((c, c), -1, dtype=torch.long)
            for row, (s, o) in enumerate(pairs):
                index[s, o] = row
            return cls(mode, triple=encoder.encode_texts(texts).reshape(len(pairs), r, -1), triple_index=index)
        return cls(mode, unary=encoder.encode_texts(preds))


@dataclass
class RelationSet:
    """Embedded samples: features, target predicate indices and each pair's full truth (Q, R)."""

    features: RelationFeatures
    targets: Tensor
    truth: Tensor
    predicates: list[str]
    entities: list[str]

    def __len__(self) -> int:
        return len(self.targets)

    def take(self, index: Tensor) -> "RelationSet":
        return RelationSet(self.features.take(index), self.targets[index], self.truth[index], self.predicates,
                           self.entities)

    @property
    def also_true(self) -> Tensor:
        """The pair's other true predicates: not negatives of this sample."""
        own = torch.zeros_like(self.truth)
        own[torch.arange(len(self.targets)), self.targets] = True
        return self.truth & ~own


@dataclass
class FitHistory:
    steps: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)


class RelationHead(nn.Module):
    """Subject, object and union embeddings -> one visual relation embedding per contrast level."""

    def __init__(self, dim: int, levels: int, hidden: int = 512) -> None:
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(3 * dim, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU())
        self.levels = nn.ModuleList(nn.Linear(hidden, dim) for _ in range(levels))
        for layer in self.levels:
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, features: RelationFeatures) -> list[Tensor]:
        hidden = self.trunk(torch.cat([features.subject, features.object, features.union], dim=-1))
        return [features.union + layer(hidden) for layer in self.levels]


class RelCLIPClassifier(nn.Module):
    """Predicate classification over ``predicates`` with RCL; see the module docstring."""

    def __init__(self, tables: TextTables, dictionary: NegativeDictionary, dim: int, hidden: int = 512,
                 temperature: float = DEFAULT_TEMPERATURE) -> None:
        super().__init__()
        self.tables = tables
        self.criterion = RelationalContrastiveLoss(dictionary, tables.mode, temperature)
        self.head = RelationHead(dim, 2 if tables.mode == "dual" else 1, hidden)

    def _inputs(self, features: RelationFeatures) -> tuple[Tensor | tuple[Tensor, Tensor],
                                                           Tensor | tuple[Tensor, Tensor]]:
        visual = self.head(features)
        t = self.tables
        if t.mode == "dual":
            assert t.subject_predicate is not None and t.predicate_object is not None
            return (visual[0], visual[1]), (t.subject_predicate[features.subject_class],
                                            t.predicate_object[features.object_class])
        if t.mode == "triple":
            assert t.triple is not None and t.triple_index is not None
            rows = t.triple_index[features.subject_class, features.object_class]
            if (rows < 0).any():
                raise ValueError("a (subject, object) class pair without triple texts; pass it in class_pairs")
            return visual[0], t.triple[rows]
        assert t.unary is not None
        return visual[0], t.unary

    def loss(self, data: RelationSet) -> Tensor:
        visual, texts = self._inputs(data.features)
        return self.criterion(visual, texts, data.targets, data.also_true)

    def scores(self, features: RelationFeatures) -> Tensor:
        """``(Q, R)`` predicate scores."""
        visual, texts = self._inputs(features)
        return self.criterion.predicate_scores(visual, texts)

    @torch.no_grad()
    def accuracy(self, data: RelationSet) -> float:
        """Share of samples whose top predicate is true for their pair."""
        if not len(data):
            return float("nan")
        top = self.scores(data.features).argmax(dim=1)
        return float(data.truth[torch.arange(len(data)), top].float().mean().item())

    def fit(self, data: RelationSet, steps: int = 200, lr: float = 1e-3, batch_size: int | None = None,
            seed: int = 0, log_every: int = 0) -> FitHistory:
        """Adam on the RCL loss; full batch unless ``batch_size``; prints loss/accuracy every ``log_every``."""
        generator = torch.Generator().manual_seed(seed)
        optimiser = torch.optim.Adam(self.head.parameters(), lr=lr)
        history = FitHistory()
        for step in range(1, steps + 1):
            self.train()
            batch = data
            if batch_size is not None and batch_size < len(data):
                batch = data.take(torch.randperm(len(data), generator=generator)[:batch_size])
            loss = self.loss(batch)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            if log_every and (step % log_every == 0 or step in (1, steps)):
                self.eval()
                accuracy = self.accuracy(data)
                history.steps.append(step)
                history.loss.append(float(loss.item()))
                history.accuracy.append(accuracy)
                print(f"step {step:4d}  loss {loss.item():.4f}  accuracy {accuracy:.3f}", flush=True)
        self.eval()
        return history



def embed_samples(encoder: ClipEncoder, samples: Sequence[RelationSample], predicates: Sequence[str] | None = None,
                  entities: Sequence[str] | None = None) -> RelationSet:
    """Frozen CLIP features of ``samples`` over the given (default: their own, sorted) vocabularies."""
    preds = list(predicates) if predicates is not None else sorted({s.predicate for s in samples})
    ents = (list(entities) if entities is not None
            else sorted({s.subject for s in samples} | {s.object for s in samples}))
    index = {p: i for i, p in enumerate(preds)}
    targets = torch.tensor([index[s.predicate] for s in samples], dtype=torch.long)
    return RelationSet(extract_features(encoder, samples, ents), targets, pair_truth(samples, preds), preds, ents)


def build_relclip(encoder: ClipEncoder, data: RelationSet, *, mode: ContrastMode = "dual",
                  epsilon: float = SYNONYM_EPSILON, max_negatives: int | None = None, exclude_synonyms: bool = True,
                  weighted: bool = True, similarity: Tensor | None = None, hidden: int = 512,
                  temperature: float = DEFAULT_TEMPERATURE) -> RelCLIPClassifier:
    """A classifier over ``data``'s predicates and entities.

    ``similarity`` (R, R) over ``data.predicates`` defaults to MiniLM word embeddings.
    """
    if similarity is None:
        similarity = predicate_similarity(data.predicates)
    dictionary = build_negative_dictionary(similarity, epsilon=epsilon, max_negatives=max_negatives,
                                           exclude_synonyms=exclude_synonyms, weighted=weighted)
    # Triple texts only for the class pairs that occur (C² × R texts would be mostly unused).
    pairs = list(zip(data.features.subject_class.tolist(), data.features.object_class.tolist()))
    tables = TextTables.encode(encoder, data.entities, data.predicates, mode, class_pairs=pairs)
    return RelCLIPClassifier(tables, dictionary, encoder.dim, hidden=hidden, temperature=temperature)
