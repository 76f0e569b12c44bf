"""Attributes -> one-hot features: decoded LVLM attributes (Pomo et al.), and categorical item
fields (the `onehot` extractor and its options).

Decoded attributes, per slot: normalise keywords (lower case, punctuation and articles stripped, a light rule-based
singular lemmatiser), cluster near-duplicates by cosine of their sentence embeddings (greedy,
most frequent first), keep the `top` clusters and pool the rest in "Other". Five slots x
(50 + Other) gives the paper's 255 features.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from pydantic import Field

from vlmrec.errors import ConfigError
from vlmrec.features.extraction import Extractor, ExtractorOptions
from vlmrec.linalg import l2_normalise

ARTICLES = {"a", "an", "the"}


def lemmatise(word: str) -> str:
    """A light rule-based singular ('puppies' -> 'puppy', 'boxes' -> 'box', 'toys' -> 'toy')."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 4 and re.search(r"(ches|shes|sses|xes|zes)$", word):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def normalise_keyword(value: str) -> str:
    """First keyword of a value ('Rubber, plastic' -> 'rubber'), normalised."""
    first = re.split(r"[,/;]| and | or ", value.lower())[0]
    words = [w for w in re.findall(r"[a-z0-9\-]+", first) if w not in ARTICLES]
    return " ".join(lemmatise(w) for w in words)


def cluster_keywords(
    counts: Counter, embed: Callable[[list[str]], np.ndarray] | None, threshold: float = 0.85
) -> dict[str, str]:
    """Map each keyword to its cluster representative (the most frequent member)."""
    ordered = sorted(counts, key=lambda k: (-counts[k], k))
    if embed is None or len(ordered) < 2:
        return {k: k for k in ordered}
    vecs = embed(ordered)
    vecs = l2_normalise(vecs)
    reps: list[int] = []
    mapping = {}
    for i, k in enumerate(ordered):
        if reps:
            sims = vecs[reps] @ vecs[i]
            j = int(np.argmax(sims))
            if sims[j] >= threshold:
                mapping[k] = ordered[reps[j]]
                continue
        reps.append(i)
        mapping[k] = k
    return mapping


class AttributeEncoder:
    """Slot answers -> one-hot columns `<slot>=<keyword>` (top keywords per slot + `<slot>=Other`)."""

    def __init__(
        self,
        slots: Sequence[str],
        top: int = 50,
        threshold: float = 0.85,
        embed: Callable[[list[str]], np.ndarray] | None = None,
    ):
        self.slots = list(slots)
        self.top = top
        self.threshold = threshold
        self.embed = embed

    def fit(self, answers: list[dict[str, str]]) -> AttributeEncoder:
        """Learn the keyword clusters and the kept keywords of every slot."""
        self.mapping: dict[str, dict[str, str]] = {}
        self.vocab: dict[str, list[str]] = {}
        for slot in self.slots:
            counts = Counter(normalise_keyword(a[slot]) for a in answers if a.get(slot))
            counts.pop("", None)
            mapping = cluster_keywords(counts, self.embed, self.threshold)
            clustered: Counter[str] = Counter()
            for k, c in counts.items():
                clustered[mapping[k]] += c
            self.mapping[slot] = mapping
            self.vocab[slot] = sorted(clustered, key=lambda k: (-clustered[k], k))[: self.top]
        self.columns = [f"{s}={v}" for s in self.slots for v in [*self.vocab[s], "Other"]]
        self._index = {c: i for i, c in enumerate(self.columns)}
        return self

    def transform(self, answers: list[dict[str, str]]) -> np.ndarray:
        """One-hot rows (a missing slot sets no column)."""
        out = np.zeros((len(answers), len(self.columns)), np.float32)
        for row, a in enumerate(answers):
            for slot in self.slots:
                if not a.get(slot):
                    continue  # missing slot: no column set (recorded as a parse failure upstream)
                key = self.mapping[slot].get(normalise_keyword(a[slot]), normalise_keyword(a[slot]))
                col = self._index.get(f"{slot}={key}", self._index[f"{slot}=Other"])
                out[row, col] = 1.0
        return out


class OneHotOptions(ExtractorOptions):
    """Options of `onehot` (multi-hot of categorical item fields)."""

    fields: list[str] = Field(
        min_length=1, description="categorical item fields, e.g. genres or categories (--fields)"
    )
    top: int = Field(50, ge=1, description="most frequent values kept per field (the rest pooled in Other)")


def _split_values(value: Any) -> list[str]:
    return [t.strip().lower() for t in re.split(r"[,|]", str(value or "")) if t.strip()]


class MultiHotExtractor(Extractor):
    """Multi-hot encoding of categorical item fields (e.g. MovieLens genres, Amazon categories):
    values split on ',' or '|', the `top` most frequent per field kept (fitted on the whole
    catalogue), the rest pooled in '<field>=Other'. Attribute vectors for AttributeItemKNN."""

    def __init__(self, fields: Sequence[str], top: int = 50, name: str = "onehot"):
        self.name = name
        self.fields = list(fields)
        self.top = top
        self.vocab: list[str] = []
        self.index: dict[str, int] = {}
        self.fitted = False

    def fit(self, items: pd.DataFrame) -> None:
        """The vocabulary: per field, the `top` most frequent values (+ Other when there are more)."""
        missing = [f for f in self.fields if f not in items.columns]
        if missing:
            raise ConfigError(
                f"onehot fields {missing} are not in the item table (columns: {list(items.columns)})"
            )
        self.vocab = []
        for f in self.fields:
            counts = Counter(t for v in items[f] for t in _split_values(v))
            kept = sorted(counts, key=lambda t: (-counts[t], t))[: self.top]
            self.vocab += [f"{f}={t}" for t in kept] + ([f"{f}=Other"] if len(counts) > self.top else [])
        self.index = {t: i for i, t in enumerate(self.vocab)}
        self.fitted = True

    def process(self, items: pd.DataFrame) -> tuple[np.ndarray, dict[int, str]]:
        """Multi-hot rows; items with no value in any field are listed as failed."""
        if not self.fitted:
            raise ConfigError(f"{self.name}: fit the extractor on the item table before processing items")
        out = np.zeros((len(items), len(self.vocab)), np.float32)
        failed = {}
        for pos in range(len(items)):
            for f in self.fields:
                for t in _split_values(items[f].iloc[pos]):
                    j = self.index.get(f"{f}={t}", self.index.get(f"{f}=Other"))
                    if j is not None:
                        out[pos, j] = 1.0
            if not out[pos].any():
                failed[pos] = "no attribute values"
        return out, failed

    def manifest(self) -> dict[str, Any]:
        """Fields and the fitted vocabulary."""
        return {
            "extractor": self.name,
            "modality": "attributes",
            "model": "multi-hot",
            "fields": self.fields,
            "vocabulary": self.vocab,
            "preprocessing": "split on , or |, lower-cased, top values per field + Other",
        }
