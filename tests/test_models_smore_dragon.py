"""SMORE and DRAGON against their reference equations (dense float64 numpy, re-derived from the
papers and MMRec's code, not from vlmrec), their cold-item rules, and learning on the
six-community dataset. Tiny fixtures and helpers are shared with tests/test_model_equations.py."""

import numpy as np
import pytest
import torch

from tests.test_model_equations import (
    BATCH,
    N_USERS,
    bpr,
    built,
    knn_dense,
    laplacian,
    layer_mean,
    lightgcn_norm,
    loss_of,
    params,
    scores_of,
    tiny,  # noqa: F401  (the fixture)
)
from tests.test_models_mgcn_lgmrec import RecordedDropout
from vlmrec.evaluation import Evaluator
from vlmrec.features.featureset import FeatureSet
from vlmrec.models import create_model


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def softmax(x, axis):
    z = np.exp(x - x.max(axis=axis, keepdims=True))
    return z / z.sum(axis=axis, keepdims=True)


def unit(x):
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def linear(p, name, x):
    out = x @ p[f"{name}.weight"].T
    return out + p[f"{name}.bias"] if f"{name}.bias" in p else out


def info_nce(a, b, tau):
    """MMRec's InfoNCE: mean_r -log(exp(pos_r / tau) / sum_s exp(a_r . b_s / tau))."""
    a, b = unit(a), unit(b)
    pos = np.exp((a * b).sum(1) / tau)
    ttl = np.exp(a @ b.T / tau).sum(1)
    return np.mean(-np.log(pos / ttl))


# ---- SMORE ---------------------------------------------------------------------------------
def fused_max(graphs):
    """MMRec's max_pool_fusion, dense: the max over the graphs that have the edge."""
    stacked = np.stack([np.where(g != 0, g, -np.inf) for g in graphs])
    out = stacked.max(0)
    return np.where(np.isfinite(out), out, 0.0)


def smore_reference(r, feats0, p, ks, n_layers, n_ui_layers, cold=(), masks=None, rate=0.0):
    """MMRec's SMORE forward, dense: (final, side, user-item view); `masks` the dropout keep
    masks of the three preference gates (image, text, fusion; None: dropout off), applied as
    nn.Dropout(rate) does."""
    norm = lightgcn_norm(r)
    r_hat = norm[:N_USERS, N_USERS:]
    ui = layer_mean(norm, np.vstack([p["user"], p["item"]]), n_ui_layers)
    ui[[N_USERS + c for c in cold]] = 0
    names = ("image", "text")
    graphs = [laplacian(knn_dense(feats0[n], k, True)) for n, k in zip(names, ks)]
    graphs.append(fused_max(graphs))
    z = [p[f"features.{m}"] @ p[f"project.{m}.weight"].T + p[f"project.{m}.bias"] for m in range(2)]
    d = z[0].shape[1]
    spec = [np.fft.rfft(x, axis=1, norm="ortho") for x in z]
    w = [p[f"filters.{v}"][:, 0] + 1j * p[f"filters.{v}"][:, 1] for v in range(3)]
    conv = [np.fft.irfft(spec[m] * w[m], n=d, axis=1, norm="ortho") for m in range(2)]
    conv.append(np.fft.irfft(spec[0] * spec[1] * w[2], n=d, axis=1, norm="ortho"))
    views = []
    for v in range(3):
        x = p["item"] * sigmoid(linear(p, f"purify.{v}", conv[v]))
        for _ in range(n_layers):
            x = graphs[v] @ x
        views.append(np.vstack([r_hat @ x, x]))
    fusion = views[2]
    parts = [
        softmax(linear(p, f"query.{m}.2", np.tanh(linear(p, f"query.{m}.0", fusion))), 1) * views[m]
        for m in range(2)
    ] + [fusion]
    gates = [sigmoid(linear(p, f"prefer.{v}", ui)) for v in range(3)]
    if masks is not None:
        gates = [g * k / (1 - rate) for g, k in zip(gates, masks)]
    side = np.mean([gates[v] * parts[v] for v in range(3)], 0)
    return ui + side, side, ui


def test_smore_equations(tiny):  # noqa: F811
    ds, r, feats = tiny
    m = built(
        "smore", ds, feats, image_knn_k=5, text_knn_k=3, dropout=0.0, reg_weight=0.05, cl_loss=0.3,
        n_ui_layers=3, batch_size=16, temperature=0.4,
    )  # fmt: skip
    p = params(m)
    feats0 = {k: v.vectors.astype(np.float64) for k, v in feats.items()}
    e, side, ui = smore_reference(r, feats0, p, (5, 3), 1, 3)
    eu, ei = e[:N_USERS], e[N_USERS:]
    np.testing.assert_allclose(scores_of(m), eu @ ei.T, atol=1e-5)
    u, i, j = BATCH
    ref = bpr((eu[u] * ei[i]).sum(1), (eu[u] * ei[j]).sum(1))
    ref += 0.05 * 0.5 * ((eu[u] ** 2).sum() + (ei[i] ** 2).sum() + (ei[j] ** 2).sum()) / 16
    n = N_USERS
    ref += 0.3 * (info_nce(side[n + i], ui[n + i], 0.4) + info_nce(side[u], ui[u], 0.4))
    assert loss_of(m) == pytest.approx(ref, abs=1e-5)


def test_smore_equations_with_gate_dropout(tiny, monkeypatch):  # noqa: F811
    """dropout > 0: the training loss drops the three preference gates (recorded masks, scaled by
    1 / (1 - dropout)); scoring does not drop."""
    from vlmrec.models import smore

    ds, r, feats = tiny
    m = built(
        "smore", ds, feats, image_knn_k=5, text_knn_k=3, dropout=0.4, reg_weight=0.05, cl_loss=0.3,
        n_ui_layers=3, batch_size=16, temperature=0.4,
    )  # fmt: skip
    p = params(m)
    feats0 = {k: v.vectors.astype(np.float64) for k, v in feats.items()}
    drop = RecordedDropout()
    monkeypatch.setattr(smore, "F", drop)
    e, _, _ = smore_reference(r, feats0, p, (5, 3), 1, 3)
    np.testing.assert_allclose(scores_of(m), e[:N_USERS] @ e[N_USERS:].T, atol=1e-5)
    m._export()
    assert drop.masks == []  # no dropout at scoring
    m.net.train()
    loss = loss_of(m)
    assert len(drop.masks) == 3 and 0 < np.mean(np.concatenate([k.ravel() for k in drop.masks])) < 1
    e, side, ui = smore_reference(r, feats0, p, (5, 3), 1, 3, masks=drop.masks, rate=0.4)
    eu, ei = e[:N_USERS], e[N_USERS:]
    u, i, j = BATCH
    ref = bpr((eu[u] * ei[i]).sum(1), (eu[u] * ei[j]).sum(1))
    ref += 0.05 * 0.5 * ((eu[u] ** 2).sum() + (ei[i] ** 2).sum() + (ei[j] ** 2).sum()) / 16
    n = N_USERS
    ref += 0.3 * (info_nce(side[n + i], ui[n + i], 0.4) + info_nce(side[u], ui[u], 0.4))
    assert loss == pytest.approx(ref, abs=1e-5)


def test_smore_fusion_graph_is_the_max_over_the_union():
    import scipy.sparse as sp

    from vlmrec.models.smore import max_fused_graph

    a = np.array([[0.5, 0, -0.2], [0, 0.1, 0], [0.3, 0, 0]])
    b = np.array([[0.4, 0.7, 0], [0, 0.6, 0], [0, 0, 0.9]])
    out = max_fused_graph([sp.csr_matrix(a), sp.csr_matrix(b)]).toarray()
    np.testing.assert_allclose(out, fused_max([a, b]), atol=1e-7)
    assert out[0, 2] == pytest.approx(-0.2)  # an edge of one graph only keeps its (negative) value


def test_smore_cold_item_is_scored_by_its_spectral_views(tiny):  # noqa: F811
    ds, r, feats = tiny
    m = built("smore", ds, feats, image_knn_k=5, text_knn_k=3, n_ui_layers=2)
    assert list(m.cold_items_) == [13]
    p = params(m)
    feats0 = {k: v.vectors.astype(np.float64) for k, v in feats.items()}
    raw_users, raw_items = m.user_factors_.copy(), m.item_factors_.copy()
    e, _, _ = smore_reference(r, feats0, p, (5, 3), 1, 2, cold=[13])
    m._export(cold_rule=True)
    np.testing.assert_allclose(m.item_factors_[13], e[N_USERS + 13], atol=1e-5)
    assert np.abs(raw_items[13] - m.item_factors_[13]).max() > 1e-3
    np.testing.assert_allclose(m.item_factors_[:13], raw_items[:13], atol=1e-6)
    np.testing.assert_allclose(m.user_factors_, raw_users, atol=1e-6)


# ---- DRAGON --------------------------------------------------------------------------------
def user_graph_dense(r, k):
    """Each user's k users with the most shared items (count desc, index asc; itself excluded),
    weights softmax(count) over them."""
    c = r @ r.T
    np.fill_diagonal(c, 0)
    g = np.zeros_like(c)
    for u in range(len(c)):
        nbrs = [v for v in sorted(range(len(c)), key=lambda v: (-c[u, v], v)) if c[u, v] > 0][:k]
        if nbrs:
            g[u, nbrs] = softmax(c[u, nbrs], 0)
    return g


class RecordedRandom:
    """Stands in for the model's numpy generator: seeded uniform draws, kept in call order."""

    def __init__(self):
        self.rng = np.random.default_rng(11)
        self.drawn = []

    def random(self, size):
        d = self.rng.random(size)
        self.drawn.append(d)
        return d


def user_graph_padded(r, k, draws):
    """MMRec's topk_sample, dense: a user with 0 < n < k co-occurring users (count desc, index
    asc) appends members of its own growing list, at index floor(d * length) for its next draw d,
    until it has k; weights softmax(count) over the padded list, repeats adding up. `draws`: the
    model's draw arrays, one per round, over the users still short (by index)."""
    c = r @ r.T
    np.fill_diagonal(c, 0)
    lists = [
        [v for v in sorted(range(len(c)), key=lambda v: (-c[u, v], v)) if c[u, v] > 0][:k]
        for u in range(len(c))
    ]
    mine = {u: [] for u in range(len(c))}
    for t, d in enumerate(draws):
        short = [u for u, lst in enumerate(lists) if 0 < len(lst) and len(lst) + t < k]
        assert len(short) == len(d)
        for u, x in zip(short, d):
            mine[u].append(x)
    g = np.zeros_like(c)
    for u, lst in enumerate(lists):
        lst = list(lst)
        for x in mine[u]:
            lst.append(lst[int(x * len(lst))])
        if lst:
            np.add.at(g[u], lst, softmax(c[u, lst], 0))
    return g


def dragon_reference(r, feats0, p, k, k_user, image_weight, n_mm, n_ui, g_user=None):
    """MMRec's DRAGON forward (construction cat), dense: (e_U, e_I); the user graph `g_user`, by
    default the lists not padded."""
    norm = lightgcn_norm(r)
    reps = []
    for m in range(2):
        t = linear(p, f"mlp.{m}", p[f"features.{m}"])
        t = linear(p, f"mlp_out.{m}", np.where(t > 0, t, 0.01 * t))
        x = unit(np.vstack([p[f"preference.{m}"], t]))
        total, e = x.copy(), x
        for _ in range(n_ui):
            e = norm @ e
            total = total + e
        reps.append(total)
    w = p["user_weight"]
    users = np.hstack([w[:, 0] * reps[0][:N_USERS], w[:, 1] * reps[1][:N_USERS]])
    items = np.hstack([reps[0][N_USERS:], reps[1][N_USERS:]])
    s = image_weight * laplacian(knn_dense(feats0["image"], k, False), 1e-7)
    s += (1 - image_weight) * laplacian(knn_dense(feats0["text"], k, False), 1e-7)
    h = items
    for _ in range(n_mm):
        h = s @ h
    g_user = user_graph_dense(r, k_user) if g_user is None else g_user
    return users + g_user @ users, items + h


DRAGON = {"knn_k": 4, "user_knn_k": 3, "user_padding": "none", "image_weight": 0.3, "n_ui_layers": 2}


def test_dragon_equations(tiny):  # noqa: F811
    ds, r, feats = tiny
    m = built("dragon", ds, feats, reg_weight=0.2, n_mm_layers=2, **DRAGON)
    p = params(m)
    feats0 = {k: v.vectors.astype(np.float64) for k, v in feats.items()}
    eu, ei = dragon_reference(r, feats0, p, 4, 3, 0.3, 2, 2)
    np.testing.assert_allclose(scores_of(m), eu @ ei.T, atol=1e-5)
    u, i, j = BATCH
    ref = -np.mean(np.log2(sigmoid((eu[u] * ei[i]).sum(1) - (eu[u] * ei[j]).sum(1))))
    ref += 0.2 * ((p["preference.0"][u] ** 2).mean() + (p["preference.1"][u] ** 2).mean())
    ref += 0.2 * (p["user_weight"] ** 2).mean()
    assert loss_of(m) == pytest.approx(ref, abs=1e-5)


def test_dragon_equations_with_resampled_padding(tiny):  # noqa: F811
    """user_padding="resample" (the default): each epoch's padding, from recorded draws, enters
    the scores and the loss as MMRec's topk_sample would pad with those draws."""
    ds, r, feats = tiny
    m = built(
        "dragon",
        ds,
        feats,
        reg_weight=0.2,
        n_mm_layers=2,
        **{**DRAGON, "user_padding": "resample", "user_knn_k": 8},
    )
    draws = RecordedRandom()
    m._rng = draws
    m._on_epoch_start(1)  # a new epoch's padding, drawn from the recorder
    m._export()
    assert draws.drawn and sum(len(d) for d in draws.drawn) > 0  # some lists were padded
    g = user_graph_padded(r, 8, draws.drawn)
    assert not np.allclose(g, user_graph_dense(r, 8))
    p = params(m)
    feats0 = {k: v.vectors.astype(np.float64) for k, v in feats.items()}
    eu, ei = dragon_reference(r, feats0, p, 4, 8, 0.3, 2, 2, g_user=g)
    np.testing.assert_allclose(scores_of(m), eu @ ei.T, atol=1e-5)
    u, i, j = BATCH
    ref = -np.mean(np.log2(sigmoid((eu[u] * ei[i]).sum(1) - (eu[u] * ei[j]).sum(1))))
    ref += 0.2 * ((p["preference.0"][u] ** 2).mean() + (p["preference.1"][u] ** 2).mean())
    ref += 0.2 * (p["user_weight"] ** 2).mean()
    assert loss_of(m) == pytest.approx(ref, abs=1e-5)


def test_dragon_user_graph_padding_and_training_data_only(tiny):  # noqa: F811
    """resample: each short list is padded to k by repeats of its own members, so a row is
    m_v exp(c_v) / sum m_v exp(c_v) with integer m_v >= 1 summing to k; the graph comes from the
    training split alone."""
    from vlmrec.models.dragon import co_occurrence_neighbours, user_graph

    ds, r, _ = tiny
    nbr, cnt, n = co_occurrence_neighbours(ds.matrix("train"), 8, block=4)
    c = r @ r.T
    np.fill_diagonal(c, 0)
    np.testing.assert_allclose(user_graph(nbr, cnt, n, "none", None).toarray(), user_graph_dense(r, 8))
    g = user_graph(nbr, cnt, n, "resample", np.random.default_rng(0)).toarray()
    for u in range(N_USERS):
        support = np.flatnonzero(g[u])
        assert set(support) == set(nbr[u, : n[u]])
        mult = g[u, support] / np.exp(c[u, support])
        assert g[u].sum() == pytest.approx(1.0, abs=1e-6)
        if n[u] < 8:  # multiplicities of the padded list: integers >= 1 summing to k
            mult = mult / mult.sum() * 8
            assert np.allclose(mult, np.round(mult), atol=1e-4) and mult.min() > 0.99, mult
    assert (n < 8).any()  # the padding was exercised
    assert not np.allclose(g, user_graph(nbr, cnt, n, "resample", np.random.default_rng(1)).toarray())


def test_dragon_scores_cold_items_from_content(tiny):  # noqa: F811
    """Item 13 has no training edge: its vector is its projected content plus its content
    neighbours' view, as the dense re-derivation says, before and after its features move."""
    ds, r, feats = tiny
    m = built("dragon", ds, feats, **DRAGON)
    feats0 = {k: v.vectors.astype(np.float64) for k, v in feats.items()}  # the kNN graph's input
    m._export(cold_rule=True)
    _, ei = dragon_reference(r, feats0, params(m), 4, 3, 0.3, 1, 2)
    np.testing.assert_allclose(m.item_factors_[13], ei[13], atol=1e-5)
    before = m.item_factors_[13].copy()
    with torch.no_grad():
        m.net.features[1][13] += 1.0  # its text content moves, its vector follows
    m._export(cold_rule=True)
    _, ei = dragon_reference(r, feats0, params(m), 4, 3, 0.3, 1, 2)
    np.testing.assert_allclose(m.item_factors_[13], ei[13], atol=1e-5)
    assert np.abs(m.item_factors_[13] - before).max() > 1e-3


def test_dragon_restored_best_state_scores_as_validated(tiny):  # noqa: F811
    """The user graph's per-epoch padding is part of the restored best state: the final scores
    are the ones the validator saw at the best epoch, not the last epoch's padding."""
    ds, _, feats = tiny
    seen: list[np.ndarray] = []

    def validator(m):
        seen.append(m.user_factors_ @ m.item_factors_.T)
        return [0.1, 0.5, 0.2, 0.3][len(seen) - 1]  # the second epoch is the best

    m = create_model(
        "dragon", epochs=4, patience=10, lr=0.05, batch_size=16, device="cpu", knn_k=4, user_knn_k=8
    ).fit(ds, feats, seed=0, validator=validator)
    assert m.best_valid_ == 0.5 and len(seen) == 4
    assert (m._neighbours[2] < 8).any()  # some user lists are padded, differently each epoch
    np.testing.assert_allclose(m.user_factors_ @ m.item_factors_.T, seen[1], atol=1e-6)


# ---- learning on the six-community dataset -------------------------------------------------
@pytest.fixture(scope="module")
def content(multi_community_dataset):
    """Two 'modalities', both encoding the item's community (one-hot of 6) plus noise."""
    ds = multi_community_dataset
    comm = np.array(ds.info["item_community"])
    rng = np.random.default_rng(0)
    feats = {}
    for name, dim in (("text", 8), ("image", 10)):
        x = rng.normal(scale=0.3, size=(ds.n_items, dim))
        x[np.arange(ds.n_items), comm] += 1.0
        feats[name] = FeatureSet.create(x, ds, name=name, modality=name)
    return feats


def valid_recall(ds, model):
    return Evaluator(ds, "valid", ks=[10], metrics=["recall"]).evaluate(model).mean("recall", 10)


@pytest.fixture(scope="module")
def mostpop(multi_community_dataset):
    return valid_recall(multi_community_dataset, create_model("mostpop").fit(multi_community_dataset))


LEARN = {
    "dragon": {"batch_size": 128, "epochs": 15, "lr": 0.01},
    "smore": {"batch_size": 128, "epochs": 15, "lr": 0.01, "image_knn_k": 10, "text_knn_k": 10},
}


@pytest.mark.parametrize("name", list(LEARN))
def test_beats_mostpop_on_validation(multi_community_dataset, content, mostpop, name):
    ds = multi_community_dataset
    torch.set_num_threads(1)
    m = create_model(name, device="cpu", **LEARN[name]).fit(ds, content, seed=0)
    recall = valid_recall(ds, m)
    assert recall > mostpop + 0.05, (name, recall, mostpop)
    assert m.history_[-1] < m.history_[0]
