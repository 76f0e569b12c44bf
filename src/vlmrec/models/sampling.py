"""Seeded negative sampling for pairwise (BPR) training."""

from __future__ import annotations

from typing import Literal

import numpy as np
import scipy.sparse as sp

from vlmrec.errors import ConfigError

NegativePool = Literal["train", "all"]
"""Where negatives come from: `train` = items with at least one training interaction (MMRec,
Cornac, the LATTICE/FREEDOM/BM3 code); `all` = the whole catalogue, cold items included."""


def negative_pool(train: sp.csr_matrix, pool: NegativePool) -> np.ndarray:
    """Item ids negatives are drawn from, sorted."""
    if pool == "all":
        return np.arange(train.shape[1], dtype=np.int64)
    if pool == "train":
        return np.flatnonzero(np.diff(train.tocsc().indptr) > 0).astype(np.int64)
    raise ConfigError(f"negatives: unknown pool {pool!r}; choose 'train' or 'all'")


def sample_triples(
    train: sp.csr_matrix, rng: np.random.Generator, candidates: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One (user, positive, negative) triple per training interaction, shuffled; negatives
    uniform over `candidates` (default: every item) minus the user's training items
    (rejection, vectorised)."""
    coo = train.tocoo()
    order = rng.permutation(coo.nnz)
    users = coo.row[order].astype(np.int64)
    pos = coo.col[order].astype(np.int64)
    n_items = train.shape[1]
    pool = np.arange(n_items, dtype=np.int64) if candidates is None else np.asarray(candidates, np.int64)
    keys = np.sort(coo.row.astype(np.int64) * n_items + coo.col)
    neg = pool[rng.integers(0, len(pool), size=len(users))]
    for _ in range(100):
        k = users * n_items + neg
        idx = np.searchsorted(keys, k)
        clash = (idx < len(keys)) & (keys[np.minimum(idx, len(keys) - 1)] == k)
        if not clash.any():
            break
        neg[clash] = pool[rng.integers(0, len(pool), size=int(clash.sum()))]
    return users, pos, neg
