"""Strong ID-only baselines: EASE^R, iALS and the ItemKNN similarity choices, each checked against
formulas written here from the papers (not imported from the models)."""

import numpy as np
import pandas as pd
import pytest

from vlmrec.data.dataset import build_dataset
from vlmrec.errors import ModelError
from vlmrec.evaluation import Evaluator
from vlmrec.models import MODELS, create_model
from vlmrec.models.ials import cg_solve_rows, ials_loss
from vlmrec.models.itemknn import SIMILARITIES


def tiny_matrix(n_users=14, n_items=7, density=0.4, seed=0) -> np.ndarray:
    """A random binary matrix in which every user and every item has at least one interaction."""
    rng = np.random.default_rng(seed)
    x = (rng.random((n_users, n_items)) < density).astype(np.float64)
    x[np.arange(n_users), np.arange(n_users) % n_items] = 1.0
    return x


def dataset_from_dense(x: np.ndarray):
    """A Dataset whose train matrix is exactly `x` (ids sort in index order)."""
    u, i = np.nonzero(x)
    train = pd.DataFrame({"user_id": [f"u{a:04d}" for a in u], "item_id": [f"i{b:04d}" for b in i]})
    empty = pd.DataFrame({"user_id": pd.Series([], dtype=object), "item_id": pd.Series([], dtype=object)})
    ds = build_dataset("tiny", train, empty, empty)
    assert np.array_equal(ds.matrix("train").toarray(), x)
    return ds


def test_registered():
    assert {"ease", "ials", "itemknn"} <= set(MODELS)


# ---- EASE^R ------------------------------------------------------------------------------------


def ease_reference(x: np.ndarray, lam: float) -> np.ndarray:
    """Steck 2019, eq. (8): P = (X^T X + lambda I)^-1, B = I - P diag(1 / diag(P)), diag(B) = 0."""
    p = np.linalg.inv(x.T @ x + lam * np.eye(x.shape[1]))
    b = np.eye(x.shape[1]) - p @ np.diag(1.0 / np.diag(p))
    np.fill_diagonal(b, 0.0)
    return b


@pytest.mark.parametrize("lam", [0.5, 3.0, 500.0])
def test_ease_matches_closed_form(lam):
    x = tiny_matrix()
    m = create_model("ease", reg=lam).fit(dataset_from_dense(x))
    b = ease_reference(x, lam)
    assert np.allclose(m.weights_, b, atol=1e-6, rtol=1e-5)
    users = np.array([3, 0, 7])
    assert np.allclose(m.score(users), x[users] @ b, atol=1e-5)
    assert m.score(users).dtype == np.float32


def test_ease_is_the_constrained_least_squares_optimum():
    # KKT of min ||X - XB||^2 + lam ||B||^2 s.t. diag(B) = 0: the gradient
    # 2 (X^T X + lam I) B - 2 X^T X vanishes off the diagonal (the diagonal is the multiplier)
    x, lam = tiny_matrix(n_users=30, n_items=9, seed=3), 2.0
    b = create_model("ease", reg=lam).fit(dataset_from_dense(x)).weights_.astype(np.float64)
    g = x.T @ x
    grad = (g + lam * np.eye(len(g))) @ b - g
    off = ~np.eye(len(g), dtype=bool)
    assert np.abs(np.diag(b)).max() == 0.0
    assert np.abs(grad[off]).max() < 1e-4
    # and it is a minimum: any feasible perturbation increases the objective
    rng = np.random.default_rng(0)

    def objective(bb):
        return np.sum((x - x @ bb) ** 2) + lam * np.sum(bb**2)

    for _ in range(5):
        d = rng.normal(scale=1e-2, size=b.shape)
        np.fill_diagonal(d, 0.0)
        assert objective(b + d) > objective(b)


def test_ease_refuses_catalogues_above_max_items():
    ds = dataset_from_dense(tiny_matrix(n_items=7))
    with pytest.raises(ModelError, match=r"7 items.*GiB.*max_items=6"):
        create_model("ease", max_items=6).fit(ds)
    create_model("ease", max_items=7).fit(ds)  # at the limit it fits


def test_ease_rejects_non_positive_reg():
    with pytest.raises(ModelError, match="reg"):
        create_model("ease", reg=0.0)


# ---- iALS --------------------------------------------------------------------------------------


def exact_user_step(x_dense: np.ndarray, y: np.ndarray, lam: float, alpha: float) -> np.ndarray:
    """Hu et al. 2008 eq. (4) solved directly: x_u = (Y^T C^u Y + lam I)^-1 Y^T C^u p(u)."""
    out = np.empty((x_dense.shape[0], y.shape[1]))
    for u, r_u in enumerate(x_dense):
        c = 1.0 + alpha * r_u
        p = (r_u > 0).astype(float)
        a = y.T @ np.diag(c) @ y + lam * np.eye(y.shape[1])
        out[u] = np.linalg.solve(a, y.T @ (c * p))
    return out


def dense_loss(r: np.ndarray, x: np.ndarray, y: np.ndarray, lam: float, alpha: float) -> float:
    """Hu et al. 2008 eq. (3) over every (u, i) pair."""
    c = 1.0 + alpha * r
    p = (r > 0).astype(float)
    return float(np.sum(c * (p - x @ y.T) ** 2) + lam * (np.sum(x**2) + np.sum(y**2)))


def test_ials_cg_step_matches_exact_solve():
    import scipy.sparse as sp

    rng = np.random.default_rng(1)
    r = tiny_matrix(n_users=25, n_items=12, seed=1) * rng.integers(1, 4, size=(25, 12))  # counts
    y = rng.normal(size=(12, 5))
    x0 = rng.normal(size=(25, 5))
    lam, alpha = 0.7, 4.0
    exact = exact_user_step(r, y, lam, alpha)
    got = cg_solve_rows(sp.csr_matrix(r), y, x0, lam, alpha, steps=25)
    assert np.abs(got - exact).max() < 1e-4
    # a single step is not yet exact, but CG only ever improves on the warm start
    one = cg_solve_rows(sp.csr_matrix(r), y, x0, lam, alpha, steps=1)
    assert np.abs(one - exact).max() > 1e-3
    assert dense_loss(r, one, y, lam, alpha) < dense_loss(r, x0, y, lam, alpha)


def test_ials_loss_matches_dense_formula():
    import scipy.sparse as sp

    rng = np.random.default_rng(2)
    r = tiny_matrix(n_users=9, n_items=6, seed=2) * rng.integers(1, 3, size=(9, 6))
    x, y = rng.normal(size=(9, 3)), rng.normal(size=(6, 3))
    assert np.isclose(ials_loss(sp.csr_matrix(r), x, y, 0.3, 2.5), dense_loss(r, x, y, 0.3, 2.5), rtol=1e-10)


def test_ials_loss_decreases_every_iteration(community_dataset):
    m = create_model("ials", factors=8, iterations=6, reg=1.0, alpha=5.0).fit(community_dataset, seed=0)
    h = np.array(m.history_)
    assert len(h) == 6
    assert np.all(np.diff(h) <= 1e-9 * h[0]), h
    assert h[-1] < 0.9 * h[0], h


def test_ials_factors_and_seeds(community_dataset):
    a = create_model("ials", factors=6, iterations=2).fit(community_dataset, seed=5)
    b = create_model("ials", factors=6, iterations=2).fit(community_dataset, seed=5)
    c = create_model("ials", factors=6, iterations=2).fit(community_dataset, seed=6)
    users = np.arange(10)
    assert a.user_factors_.shape == (community_dataset.n_users, 6)
    assert a.item_factors_.shape == (community_dataset.n_items, 6)
    assert a.user_factors_.dtype == np.float32
    assert np.allclose(a.score(users), a.user_factors_[users] @ a.item_factors_.T)
    sa, sb, sc = a.score(users), b.score(users), c.score(users)
    assert np.array_equal(sa, sb) and not np.array_equal(sa, sc)


def test_ials_rejects_bad_parameters():
    with pytest.raises(ModelError, match="cg_steps"):
        create_model("ials", cg_steps=0)


# ---- ItemKNN similarities ----------------------------------------------------------------------


def brute_similarity(x: np.ndarray, kind: str, shrink: float, alpha: float) -> np.ndarray:
    """Item-item similarities from user sets, one pair at a time (diagonal zero)."""
    n = x.shape[1]
    users = [set(np.flatnonzero(x[:, i])) for i in range(n)]
    s = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            if i == j:
                continue
            co = len(users[i] & users[j])
            ni, nj = len(users[i]), len(users[j])
            if kind == "cosine":
                s[i, j] = co / (np.sqrt(ni * nj) + shrink)
            elif kind == "asymmetric":
                s[i, j] = co / (ni**alpha * nj ** (1 - alpha) + shrink)
            elif kind == "jaccard":
                s[i, j] = co / (len(users[i] | users[j]) + shrink)
    return s


@pytest.mark.parametrize("kind", SIMILARITIES)
@pytest.mark.parametrize("shrink", [0.0, 2.0])
def test_itemknn_similarities_match_brute_force(kind, shrink):
    x = tiny_matrix(n_users=20, n_items=8, seed=4)
    ds = dataset_from_dense(x)
    m = create_model("itemknn", similarity=kind, shrink=shrink, alpha=0.8, k=8, block=3).fit(ds)
    ref = brute_similarity(x, kind, shrink, 0.8)
    assert np.allclose(m.similarity_.toarray(), ref, atol=1e-6)
    assert np.allclose(m.score(np.arange(5)), x[:5] @ ref, atol=1e-5)


def test_itemknn_asymmetric_is_directional_and_half_is_cosine():
    x = tiny_matrix(n_users=20, n_items=8, seed=5)
    ds = dataset_from_dense(x)
    asym = create_model("itemknn", similarity="asymmetric", alpha=0.9, shrink=0.0).fit(ds)
    asym = asym.similarity_.toarray()
    assert not np.allclose(asym, asym.T)
    half = create_model("itemknn", similarity="asymmetric", alpha=0.5).fit(ds).similarity_.toarray()
    cos = create_model("itemknn", similarity="cosine").fit(ds).similarity_.toarray()
    assert np.allclose(half, cos, atol=1e-6)


def test_itemknn_keeps_k_neighbours_and_normalizes():
    x = tiny_matrix(n_users=20, n_items=8, seed=6)
    ds = dataset_from_dense(x)
    ref = brute_similarity(x, "jaccard", 1.0, 0.5)
    m = create_model("itemknn", similarity="jaccard", shrink=1.0, k=3).fit(ds)
    s = m.similarity_.toarray()
    for i in range(8):
        kept = np.flatnonzero(s[i])
        assert len(kept) <= 3
        assert np.allclose(s[i, kept], ref[i, kept], atol=1e-6)
        # every kept neighbour is at least as similar as every dropped one
        dropped = np.setdiff1d(np.flatnonzero(ref[i]), kept)
        assert len(dropped) == 0 or ref[i, kept].min() >= ref[i, dropped].max() - 1e-9
    n = create_model("itemknn", similarity="jaccard", shrink=1.0, k=3, normalize=True).fit(ds)
    sn = n.similarity_.toarray()
    sums = s.sum(1, keepdims=True)
    assert np.allclose(sn, np.divide(s, sums, out=np.zeros_like(s), where=sums > 0), atol=1e-6)
    assert np.allclose(sn.sum(1)[sums.ravel() > 0], 1.0, atol=1e-5)


def test_itemknn_default_is_unchanged_cosine():
    m = create_model("itemknn")
    assert (m.similarity, m.k, m.shrink, m.normalize) == ("cosine", 100, 10.0, False)


def test_itemknn_unknown_similarity_lists_the_valid_names():
    from vlmrec.models.itemknn import ItemKNN

    # through the registry (typed parameter check) and through the constructor directly
    for make in (lambda: create_model("itemknn", similarity="cosin"), lambda: ItemKNN(similarity="cosin")):
        with pytest.raises(ModelError, match="cosin") as err:
            make()
        assert all(name in str(err.value) for name in SIMILARITIES), str(err.value)
    with pytest.raises(ModelError, match="alpha"):
        create_model("itemknn", similarity="asymmetric", alpha=1.5)


# ---- quality on the planted communities --------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [{"similarity": "asymmetric", "alpha": 0.7}, {"similarity": "jaccard"}, {"normalize": True}],
)
def test_itemknn_variants_beat_mostpop(community_dataset, params):
    mostpop = create_model("mostpop").fit(community_dataset)
    ev = Evaluator(community_dataset, "test", ks=[10])
    base = ev.evaluate(mostpop).mean("recall", 10)
    recall = ev.evaluate(create_model("itemknn", **params).fit(community_dataset)).mean("recall", 10)
    assert recall > base + 0.05, (params, recall, base)
