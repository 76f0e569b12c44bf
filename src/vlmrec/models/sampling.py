"""Seeded negative sampling for pairwise (BPR) training."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def sample_triples(
    train: sp.csr_matrix, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One (user, positive, negative) triple per training interaction, shuffled; negatives
    uniform over items the user has not interacted with (rejection, vectorised)."""
    coo = train.tocoo()
    order = rng.permutation(coo.nnz)
    users = coo.row[order].astype(np.int64)
    pos = coo.col[order].astype(np.int64)
    n_items = train.shape[1]
    keys = np.sort(coo.row.astype(np.int64) * n_items + coo.col)
    neg = rng.integers(0, n_items, size=len(users))
    for _ in range(100):
        k = users * n_items + neg
        idx = np.searchsorted(keys, k)
        clash = (idx < len(keys)) & (keys[np.minimum(idx, len(keys) - 1)] == k)
        if not clash.any():
            break
        neg[clash] = rng.integers(0, n_items, size=int(clash.sum()))
    return users, pos, neg
