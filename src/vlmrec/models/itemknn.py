"""ItemKNN (Sarwar et al. 2001; Deshpande & Karypis 2004) with a choice of item similarity.

r_i is item i's column of the train matrix, n_i = ||r_i||^2 (its number of users on binary
data), co_ij = <r_i, r_j>, and `shrink` >= 0 damps similarities built on little support:

    cosine       sim(i, j) = co_ij / (||r_i|| ||r_j|| + shrink)
    asymmetric   sim(i, j) = co_ij / (n_i^alpha n_j^(1 - alpha) + shrink)          (Aiolli 2013)
    jaccard      sim(i, j) = |U_i & U_j| / (|U_i| + |U_j| - |U_i & U_j| + shrink)  (on binarised r)

Asymmetric cosine with alpha = 0.5 is cosine; alpha = 1 (shrink 0) is the conditional probability
P(j | i) = |U_i & U_j| / |U_i|. sim(i, i) = 0. Each item i keeps its k most similar neighbours j
(row i of `similarity_`); with `normalize` every kept row is scaled to sum to 1, so each of the
user's items contributes the same total weight. score(u, j) = sum_{i in train(u)} sim(i, j).
"""

from __future__ import annotations

from typing import Annotated, Literal, cast, get_args

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from vlmrec.data.dataset import Dataset
from vlmrec.errors import ModelError
from vlmrec.features.featureset import FeatureSet
from vlmrec.models.base import Recommender, Validator
from vlmrec.models.cold import cold_items_of, demote_cold_scores
from vlmrec.models.params import Neighbours, SimilarityBlock
from vlmrec.models.registry import register

Similarity = Literal["cosine", "asymmetric", "jaccard"]
SIMILARITIES: tuple[str, ...] = get_args(Similarity)


def top_k_rows(sim: sp.csr_matrix | np.ndarray, k: int) -> sp.csr_matrix:
    """Keep the k largest entries of each row (dense or sparse input), as CSR."""
    dense = cast(sp.csr_matrix, sim).toarray() if sp.issparse(sim) else np.asarray(sim)
    n = dense.shape[0]
    k = min(k, dense.shape[1])
    idx = np.argpartition(-dense, k - 1, axis=1)[:, :k]
    vals = np.take_along_axis(dense, idx, 1)
    keep = vals > 0
    rows = np.repeat(np.arange(n), k).reshape(n, k)
    return sp.csr_matrix((vals[keep], (rows[keep], idx[keep])), shape=dense.shape, dtype=np.float32)


def item_similarity_block(
    co: np.ndarray,
    sq_norms: np.ndarray,
    rows: slice,
    similarity: str,
    shrink: float,
    alpha: float,
) -> np.ndarray:
    """Similarities of items `rows` (sources) to all items from their co-occurrence block `co`
    (len(rows) x n_items) and every item's squared norm `sq_norms` (see the module docstring)."""
    ni, nj = sq_norms[rows], sq_norms
    if similarity == "cosine":
        denom = np.outer(np.sqrt(ni), np.sqrt(nj))
    elif similarity == "asymmetric":
        denom = np.outer(ni**alpha, nj ** (1.0 - alpha))
    elif similarity == "jaccard":
        denom = ni[:, None] + nj[None, :] - co
    else:
        raise ModelError(f"unknown similarity {similarity!r}; choose one of {', '.join(SIMILARITIES)}")
    denom = denom + shrink
    return np.divide(co, denom, out=np.zeros_like(co), where=denom > 0)


@register("itemknn")
class ItemKNN(Recommender):
    """Item-based kNN. k: neighbours kept per item; shrink: support damping; similarity: one of
    SIMILARITIES; alpha: the asymmetric-cosine exponent (used only by "asymmetric"); normalize:
    scale each kept neighbour row to sum 1; block: rows of the item-item matrix built at once."""

    def __init__(
        self,
        k: Neighbours = 100,
        shrink: Annotated[
            float,
            Field(
                ge=0, description="shrinkage added to the similarity denominator (damps low-support pairs)"
            ),
        ] = 10.0,
        similarity: Annotated[Similarity, Field(description="item-item similarity function")] = "cosine",
        alpha: Annotated[
            float, Field(ge=0, le=1, description="asymmetric cosine exponent (0.5 = cosine; 1 = P(j | i))")
        ] = 0.5,
        normalize: Annotated[
            bool, Field(description="scale each item's kept similarities to sum to 1")
        ] = False,
        block: SimilarityBlock = 2048,
    ) -> None:
        self.k = k
        self.shrink = shrink
        self.similarity = similarity
        self.alpha = alpha
        self.normalize = normalize
        self.block = block

    def fit(
        self,
        dataset: Dataset,
        features: dict[str, FeatureSet] | None = None,
        *,
        seed: int = 0,
        validator: Validator | None = None,
    ) -> ItemKNN:
        """Build the top-k item-item similarity matrix from the train matrix (deterministic)."""
        train = dataset.matrix("train").astype(np.float32)
        r = train.tocsc()
        if self.similarity == "jaccard":
            r.data[:] = 1.0
        sq_norms = np.asarray(r.multiply(r).sum(0), dtype=np.float64).ravel()
        rt = r.T.tocsr()
        n = r.shape[1]
        parts = []
        # row blocks of the item-item matrix bound memory at block x n_items
        for s in range(0, n, self.block):
            e = min(s + self.block, n)
            co = (rt[s:e] @ r).toarray().astype(np.float64)
            sim = item_similarity_block(co, sq_norms, slice(s, e), self.similarity, self.shrink, self.alpha)
            sim[np.arange(e - s), np.arange(s, e)] = 0.0
            parts.append(top_k_rows(sim, self.k))
        s_mat = sp.vstack(parts).tocsr()
        if self.normalize:
            sums = np.asarray(s_mat.sum(1)).ravel()
            s_mat = sp.diags(np.divide(1.0, sums, out=np.zeros_like(sums), where=sums > 0)) @ s_mat
        self.similarity_ = sp.csr_matrix(s_mat, dtype=np.float32)
        self.train_ = train.tocsr()
        self.cold_items_ = cold_items_of(dataset)
        return self

    def score(self, user_ids: np.ndarray) -> np.ndarray:
        """sum_{i in train(u)} sim(i, .) for the given users (users x items, float32); a cold item
        (no training interaction, no similarity) gets the lowest score, below every warm item."""
        scores = np.asarray(
            (self.train_[np.asarray(user_ids)] @ self.similarity_).toarray(), dtype=np.float32
        )
        return demote_cold_scores(scores, self.cold_items_)
