"""ItemKNN (Sarwar et al. 2001; Deshpande & Karypis 2004).

sim(i, j) = <r_i, r_j> / (||r_i|| ||r_j|| + shrink), r_i the item's column of the train matrix;
each item keeps its k most similar neighbours; score(u, j) = sum_{i in train(u)} sim(i, j).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from vlmrec.models.base import Recommender, register


def top_k_rows(sim: sp.csr_matrix | np.ndarray, k: int) -> sp.csr_matrix:
    """Keep the k largest entries of each row (dense or sparse input), as CSR."""
    dense = sim.toarray() if sp.issparse(sim) else np.asarray(sim)
    n = dense.shape[0]
    k = min(k, dense.shape[1])
    idx = np.argpartition(-dense, k - 1, axis=1)[:, :k]
    vals = np.take_along_axis(dense, idx, 1)
    keep = vals > 0
    rows = np.repeat(np.arange(n), k).reshape(n, k)
    return sp.csr_matrix((vals[keep], (rows[keep], idx[keep])), shape=dense.shape, dtype=np.float32)


@register("itemknn")
class ItemKNN(Recommender):
    def __init__(self, k: int = 100, shrink: float = 10.0, block: int = 2048) -> None:
        self.k = k
        self.shrink = shrink
        self.block = block

    def fit(self, dataset, features=None, *, seed=0, validator=None):
        r = dataset.matrix("train").astype(np.float32).tocsc()
        norms = np.sqrt(np.asarray(r.multiply(r).sum(0)).ravel())
        rt = r.T.tocsr()
        n = r.shape[1]
        parts = []
        # row blocks of the item-item matrix bound memory at block x n_items
        for s in range(0, n, self.block):
            e = min(s + self.block, n)
            co = (rt[s:e] @ r).toarray()
            sim = co / (np.outer(norms[s:e], norms) + self.shrink + 1e-12)
            sim[np.arange(e - s), np.arange(s, e)] = 0.0
            parts.append(top_k_rows(sim, self.k))
        self.similarity_ = sp.vstack(parts).tocsr()
        self.train_ = r.tocsr()
        return self

    def score(self, user_ids):
        return np.asarray((self.train_[np.asarray(user_ids)] @ self.similarity_).toarray(), dtype=np.float32)
