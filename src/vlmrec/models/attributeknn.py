"""AttributeItemKNN (Pomo et al.): item-kNN on item attributes instead of co-interactions.

sim(i, j) = cos(a_i, a_j) over attribute vectors (one-hot decoded attributes or any dense
FeatureSet), each item keeps its k nearest neighbours; score(u, j) = sum_{i in H_u} sim(i, j).
Cold item (no training interaction): scored like any item, from the similarity of its features
to the user's training items (the item-item matrix covers every item of the catalogue).
"""

from __future__ import annotations

import numpy as np

from vlmrec.models.base import Recommender
from vlmrec.models.content import concat_normalised, l2_rows
from vlmrec.models.itemknn import top_k_rows
from vlmrec.models.params import Neighbours, SimilarityBlock
from vlmrec.models.registry import register


@register("attributeknn")
class AttributeItemKNN(Recommender):
    uses_features = True

    def __init__(self, k: Neighbours = 50, block: SimilarityBlock = 4096) -> None:
        self.k = k
        self.block = block

    def fit(self, dataset, features=None, *, seed=0, validator=None):
        x = l2_rows(concat_normalised(self._require_features(features, dataset)))
        n = len(x)
        parts = []
        for s in range(0, n, self.block):
            sim = x[s : s + self.block] @ x.T
            sim[np.arange(sim.shape[0]), np.arange(s, s + sim.shape[0])] = 0.0
            parts.append(top_k_rows(np.maximum(sim, 0.0), self.k))
        import scipy.sparse as sp

        self.similarity_ = sp.vstack(parts).tocsr()
        self.train_ = dataset.matrix("train")
        return self

    def score(self, user_ids):
        return np.asarray((self.train_[np.asarray(user_ids)] @ self.similarity_).toarray(), dtype=np.float32)
