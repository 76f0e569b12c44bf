"""Decoded LVLM attributes -> one-hot features (Pomo et al.).

Per slot: normalise keywords (lower case, punctuation and articles stripped, a light rule-based
singular lemmatiser), cluster near-duplicates by cosine of their sentence embeddings (greedy,
most frequent first), keep the `top` clusters and pool the rest in "Other". Five slots x
(50 + Other) gives the paper's 255 features.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence

import numpy as np

ARTICLES = {"a", "an", "the"}


def lemmatise(word: str) -> str:
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
    vecs = vecs / np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
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
        self.mapping: dict[str, dict[str, str]] = {}
        self.vocab: dict[str, list[str]] = {}
        for slot in self.slots:
            counts = Counter(normalise_keyword(a[slot]) for a in answers if a.get(slot))
            counts.pop("", None)
            mapping = cluster_keywords(counts, self.embed, self.threshold)
            clustered = Counter()
            for k, c in counts.items():
                clustered[mapping[k]] += c
            self.mapping[slot] = mapping
            self.vocab[slot] = sorted(clustered, key=lambda k: (-clustered[k], k))[: self.top]
        self.columns = [f"{s}={v}" for s in self.slots for v in [*self.vocab[s], "Other"]]
        self._index = {c: i for i, c in enumerate(self.columns)}
        return self

    def transform(self, answers: list[dict[str, str]]) -> np.ndarray:
        out = np.zeros((len(answers), len(self.columns)), np.float32)
        for row, a in enumerate(answers):
            for slot in self.slots:
                if not a.get(slot):
                    continue  # missing slot: no column set (recorded as a parse failure upstream)
                key = self.mapping[slot].get(normalise_keyword(a[slot]), normalise_keyword(a[slot]))
                col = self._index.get(f"{slot}={key}", self._index[f"{slot}=Other"])
                out[row, col] = 1.0
        return out
