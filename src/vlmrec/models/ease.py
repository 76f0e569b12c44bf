"""EASE^R: Embarrassingly Shallow Autoencoder (Steck 2019, "Embarrassingly Shallow Autoencoders
for Sparse Data", WWW 2019).

An item-item weight matrix B learned in closed form from the binary train matrix X (users x
items):

    min_B ||X - X B||_F^2 + lambda ||B||_F^2    subject to diag(B) = 0

With the Lagrangian for the zero-diagonal constraint the solution is

    P = (X^T X + lambda I)^-1
    B_ij = -P_ij / P_jj   (i != j),      B_jj = 0,

that is B = I - P diag(1 / diag(P)) with the diagonal then set to zero (it already is, up to
rounding). Scores: score(u, .) = X_u B.

`reg` is lambda. Steck reports lambda = 500 for MovieLens-20M (and 200-1000 for the other data
sets of the paper); the best value scales with the data, so choose it on validation (the
ML-100k benchmark in `benchmarks/id_baselines.py` does). It must be > 0 (it makes the Gram
matrix invertible).

Memory: B is a dense n_items x n_items matrix. The Gram matrix is built and inverted in place in
float64 (Cholesky, LAPACK potrf/potri; 8 bytes per entry) and B is kept in float32 (4 bytes), so
the peak is about n_items^2 * 4 bytes * 3. Above `max_items` items the model refuses with a
ModelError that states the estimate, rather than exhausting memory; raise `max_items` when the
machine has the memory, or use `itemknn` / `ials`, whose memory grows with the number of
interactions.
"""

from __future__ import annotations

import logging
from typing import Annotated

import numpy as np
import scipy.sparse as sp
from pydantic import Field
from scipy.linalg import lapack

from vlmrec.data.dataset import Dataset
from vlmrec.errors import ModelError
from vlmrec.features.featureset import FeatureSet
from vlmrec.models.base import Recommender, Validator
from vlmrec.models.cold import cold_items_of, demote_cold_scores
from vlmrec.models.registry import register

log = logging.getLogger(__name__)

BYTES_PER_ITEM_PAIR = 4 * 3
"""Peak memory per entry of the item x item matrix: float64 Gram/inverse (8) + float32 B (4)."""


def ease_memory_gib(n_items: int) -> float:
    """Estimated peak memory (GiB) of fitting EASE^R on `n_items` items."""
    return n_items * n_items * BYTES_PER_ITEM_PAIR / 2**30


def gram_matrix(x: sp.csr_matrix, block: int = 2048) -> np.ndarray:
    """Dense float64 X^T X, built in row blocks so the sparse product never holds n^2 entries."""
    xc = x.astype(np.float64).tocsc()
    xt = xc.T.tocsr()
    n = x.shape[1]
    g = np.empty((n, n), dtype=np.float64)
    for s in range(0, n, block):
        e = min(s + block, n)
        g[s:e] = (xt[s:e] @ xc).toarray()
    return g


def ease_weights(x: sp.csr_matrix, reg: float, block: int = 2048) -> np.ndarray:
    """The EASE^R item-item matrix B (float32, zero diagonal) of a users x items matrix `x`."""
    if not reg > 0:
        raise ModelError(f"EASE^R needs reg (lambda) > 0, got {reg}")
    g = gram_matrix(x, block)
    g[np.diag_indices_from(g)] += reg
    # P = G^-1 in place: Cholesky factor (upper), then the inverse from it (upper triangle).
    # G is symmetric, so its transpose (a Fortran-ordered view) goes to LAPACK without a copy.
    c, info = lapack.dpotrf(g.T, lower=0, clean=0, overwrite_a=1)
    if info != 0:
        raise ModelError(f"EASE^R: X^T X + {reg} I is not positive definite (LAPACK potrf info={info})")
    p, info = lapack.dpotri(c, lower=0, overwrite_c=1)
    if info != 0:
        raise ModelError(f"EASE^R: inverting X^T X + {reg} I failed (LAPACK potri info={info})")
    n = p.shape[0]
    # only the upper triangle of p is the inverse: mirror it to the lower triangle, block by block
    for s in range(0, n, block):
        e = min(s + block, n)
        p[s:e, :s] = p[:s, s:e].T
        d = p[s:e, s:e]
        p[s:e, s:e] = np.triu(d) + np.triu(d, 1).T
    diag = np.diag(p).copy()
    b = np.empty((n, n), dtype=np.float32)
    for s in range(0, n, block):
        e = min(s + block, n)
        b[s:e] = p[s:e] / -diag[None, :]
    b[np.diag_indices_from(b)] = 0.0
    return b


@register("ease")
class EASE(Recommender):
    """EASE^R (Steck 2019): closed-form item-item model, score(u) = X_u B.

    reg: lambda, the L2 weight on B (default 500, the paper's MovieLens-20M value; tune it).
    max_items: refuse catalogues larger than this (dense B; peak memory ~ n_items^2 * 12 bytes).
    Cold item (no training interaction, a zero column of B): the lowest score, below every warm
    item (a score of 0 would rank it above warm items with negative scores).
    """

    def __init__(
        self,
        reg: Annotated[
            float,
            Field(gt=0, description="lambda, the L2 weight on B (must be > 0; choose it on validation)"),
        ] = 500.0,
        max_items: Annotated[
            int,
            Field(
                ge=1,
                description="refuse catalogues above this size (the dense item-item matrix would not fit)",
            ),
        ] = 30000,
    ) -> None:
        self.reg = reg
        self.max_items = max_items

    def fit(
        self,
        dataset: Dataset,
        features: dict[str, FeatureSet] | None = None,
        *,
        seed: int = 0,
        validator: Validator | None = None,
    ) -> EASE:
        """Solve for B in closed form on the train matrix (deterministic; `seed` is unused)."""
        n = dataset.n_items
        gib = ease_memory_gib(n)
        if n > self.max_items:
            raise ModelError(
                f"ease: the catalogue has {n:,} items; EASE^R needs a dense {n:,} x {n:,} item matrix, "
                f"about {gib:.1f} GiB at peak (n_items^2 x 12 bytes), and max_items={self.max_items:,}. "
                "Raise max_items if the machine has that memory, or use 'itemknn' or 'ials'."
            )
        log.info("ease: %d items, about %.2f GiB at peak", n, gib)
        train = dataset.matrix("train")
        self.weights_ = ease_weights(train, self.reg)
        self.train_ = train.astype(np.float32).tocsr()
        self.cold_items_ = cold_items_of(dataset)
        return self

    def score(self, user_ids: np.ndarray) -> np.ndarray:
        """X_u B for the given users (users x items, float32)."""
        scores = np.asarray(self.train_[np.asarray(user_ids)] @ self.weights_, dtype=np.float32)
        return demote_cold_scores(scores, self.cold_items_)
