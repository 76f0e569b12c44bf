"""iALS: implicit-feedback alternating least squares (Hu, Koren & Volinsky 2008, "Collaborative
Filtering for Implicit Feedback Datasets"), each least-squares step solved approximately by
conjugate gradient (Takács, Pilászy & Tikk 2011, "Applications of the conjugate gradient method
for implicit feedback collaborative filtering").

Data: r_ui >= 0 from the train matrix (binary here, so r_ui = 1 for observed pairs).
Preference p_ui = 1 if r_ui > 0 else 0; confidence c_ui = 1 + alpha * r_ui.

    L(X, Y) = sum_{u,i} c_ui (p_ui - x_u^T y_i)^2 + lambda (sum_u ||x_u||^2 + sum_i ||y_i||^2)

over *all* user-item pairs. With Y fixed, each user's row solves a ridge system

    (Y^T C_u Y + lambda I) x_u = Y^T C_u p_u,

and the Gram-matrix trick makes it cheap: Y^T C_u Y = Y^T Y + Y^T (C_u - I) Y, where Y^T Y is
shared by every user and C_u - I is non-zero only on the user's observed items (alpha * r_ui);
likewise Y^T C_u p_u = sum_{i in I_u} (1 + alpha r_ui) y_i. Items are solved the same way with
the roles of X and Y exchanged.

Instead of solving each system exactly (O(f^3) per row), `cg_steps` steps of conjugate gradient
are run per row, warm-started from the current factors (Takács et al.). CG runs for all rows at
once: one matrix-vector product A_u p_u for every row costs O(nnz f + n f^2) with the trick
above. With cg_steps >= factors the step is exact up to rounding.

The loss is computed without the dense prediction matrix:
sum_{u,i} (x_u^T y_i)^2 = <X^T X, Y^T Y>, plus, on observed pairs only,
c_ui (1 - s_ui)^2 - s_ui^2 with s_ui = x_u^T y_i.

Factors are initialised N(0, init_std^2) from `np.random.default_rng(seed)`, computed in float64
and exposed as float32 `user_factors_` / `item_factors_`; `history_` holds the loss after each
iteration.
"""

from __future__ import annotations

import logging
from typing import Annotated

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from vlmrec.data.dataset import Dataset
from vlmrec.features.featureset import FeatureSet
from vlmrec.models.base import FactorModel, Validator
from vlmrec.models.cold import cold_items_of, demote_cold_factors
from vlmrec.models.registry import register

log = logging.getLogger(__name__)


def _observed_dots(r: sp.csr_matrix, x: np.ndarray, y: np.ndarray, chunk: int = 1 << 18) -> np.ndarray:
    """x_u^T y_i for every stored (u, i) of `r`, in CSR order (chunked to bound memory)."""
    rows = np.repeat(np.arange(r.shape[0]), np.diff(r.indptr))
    cols = r.indices
    out = np.empty(len(cols), dtype=np.float64)
    for s in range(0, len(cols), chunk):
        e = min(s + chunk, len(cols))
        out[s:e] = np.einsum("ij,ij->i", x[rows[s:e]], y[cols[s:e]])
    return out


def _apply(
    r: sp.csr_matrix, y: np.ndarray, gram: np.ndarray, reg: float, alpha: float, v: np.ndarray
) -> np.ndarray:
    """Row-wise A_u v_u with A_u = Y^T Y + Y^T (C_u - I) Y + reg I, for every row u of `r`."""
    w = alpha * r.data * _observed_dots(r, v, y)
    return v @ gram + reg * v + sp.csr_matrix((w, r.indices, r.indptr), shape=r.shape) @ y


def cg_solve_rows(
    r: sp.csr_matrix,
    y: np.ndarray,
    x0: np.ndarray,
    reg: float,
    alpha: float,
    steps: int,
) -> np.ndarray:
    """One half-step of iALS: approximately solve (Y^T C_u Y + reg I) x_u = Y^T C_u p_u for every
    row u of `r` (rows x cols, r_ui > 0 observed) by `steps` conjugate-gradient steps from `x0`.

    Returns the new row factors (float64); `x0` is not modified.
    """
    r = sp.csr_matrix(r, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    x = np.array(x0, dtype=np.float64, copy=True)
    gram = y.T @ y
    # b_u = sum_{i in I_u} c_ui p_ui y_i = sum_{i in I_u} (1 + alpha r_ui) y_i
    b = sp.csr_matrix((1.0 + alpha * r.data, r.indices, r.indptr), shape=r.shape) @ y
    res = b - _apply(r, y, gram, reg, alpha, x)
    p = res.copy()
    rs_old = np.einsum("ij,ij->i", res, res)
    for _ in range(steps):
        active = rs_old > 1e-20
        if not active.any():
            break
        ap = _apply(r, y, gram, reg, alpha, p)
        pap = np.einsum("ij,ij->i", p, ap)
        step = np.divide(rs_old, pap, out=np.zeros_like(rs_old), where=active & (pap > 0))
        x += step[:, None] * p
        res -= step[:, None] * ap
        rs_new = np.einsum("ij,ij->i", res, res)
        beta = np.divide(rs_new, rs_old, out=np.zeros_like(rs_new), where=active)
        p = res + beta[:, None] * p
        rs_old = rs_new
    return x


def ials_loss(r: sp.csr_matrix, x: np.ndarray, y: np.ndarray, reg: float, alpha: float) -> float:
    """The full weighted loss L(X, Y) over all user-item pairs (see the module docstring)."""
    r = sp.csr_matrix(r, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    all_pairs = float(np.sum((x.T @ x) * (y.T @ y)))
    s = _observed_dots(r, x, y)
    c = 1.0 + alpha * r.data
    observed = float(np.sum(c * (1.0 - s) ** 2 - s**2))
    return all_pairs + observed + reg * (float(np.sum(x * x)) + float(np.sum(y * y)))


@register("ials")
class IALS(FactorModel):
    """iALS (Hu et al. 2008) with conjugate-gradient row solves (Takács et al. 2011).

    factors: latent dimension f. reg: lambda (L2 on both factor matrices, unscaled as in the
    paper). alpha: confidence slope, c_ui = 1 + alpha r_ui. iterations: alternating sweeps
    (users then items). cg_steps: CG steps per row per sweep (warm-started). init_std: standard
    deviation of the N(0, init_std^2) initialisation.

    The defaults (64 factors, reg 30, alpha 3) are within 0.003 validation Recall@20 of the best
    point (64 factors, reg 50, alpha 10) of the 32-point grid that `benchmarks/id_baselines.py`
    searches on MovieLens-100k. reg is not scaled by the number of interactions, so its best
    value grows with the data set: tune it. Too large a reg for the data (e.g. 100 with alpha 1
    on ML-100k) collapses the factors towards zero.

    Cold item (no training interaction): the lowest score, below every warm item
    (`demote_cold_factors`: its factor row is zeroed and one column ranks it last).
    """

    def __init__(
        self,
        factors: Annotated[int, Field(ge=1, description="latent factors per user and item")] = 64,
        reg: Annotated[
            float, Field(ge=0, description="lambda, the L2 weight on user and item factors")
        ] = 30.0,
        alpha: Annotated[float, Field(ge=0, description="confidence weight: c_ui = 1 + alpha r_ui")] = 3.0,
        iterations: Annotated[int, Field(ge=1, description="alternating least-squares sweeps")] = 15,
        cg_steps: Annotated[
            int, Field(ge=1, description="conjugate-gradient steps per least-squares solve")
        ] = 3,
        init_std: Annotated[
            float, Field(gt=0, description="standard deviation of the initial factors")
        ] = 0.01,
    ) -> None:
        self.factors = factors
        self.reg = reg
        self.alpha = alpha
        self.iterations = iterations
        self.cg_steps = cg_steps
        self.init_std = init_std

    def fit(
        self,
        dataset: Dataset,
        features: dict[str, FeatureSet] | None = None,
        *,
        seed: int = 0,
        validator: Validator | None = None,
    ) -> IALS:
        """Alternate CG row solves for users and items; `history_` records the loss per sweep."""
        r = dataset.matrix("train").astype(np.float64).tocsr()
        rt = r.T.tocsr()
        rng = np.random.default_rng(seed)
        x = rng.normal(0.0, self.init_std, size=(r.shape[0], self.factors))
        y = rng.normal(0.0, self.init_std, size=(r.shape[1], self.factors))
        self.history_: list[float] = []
        for it in range(self.iterations):
            x = cg_solve_rows(r, y, x, self.reg, self.alpha, self.cg_steps)
            y = cg_solve_rows(rt, x, y, self.reg, self.alpha, self.cg_steps)
            self.history_.append(ials_loss(r, x, y, self.reg, self.alpha))
            log.debug("ials iteration %d: loss %.4f", it + 1, self.history_[-1])
        self.user_factors_ = x.astype(np.float32)
        self.item_factors_ = y.astype(np.float32)
        self.cold_items_ = cold_items_of(dataset)
        if len(self.cold_items_):
            self.user_factors_, self.item_factors_ = demote_cold_factors(
                self.user_factors_, self.item_factors_, self.cold_items_
            )
        return self
