"""MGCN and LGMRec against their reference equations (dense float64 numpy, re-derived from the
papers and MMRec's code, not from vlmrec), their cold-item rules, and learning on the
six-community dataset. Tiny fixtures and helpers are shared with tests/test_model_equations.py."""

import numpy as np
import pandas as pd
import pytest
import torch

from tests.test_model_equations import (
    BATCH,
    N_USERS,
    bpr,
    built,
    emb_loss,
    knn_dense,
    laplacian,
    layer_mean,
    lightgcn_norm,
    loss_of,
    params,
    scores_of,
    tiny,  # noqa: F401  (the fixture)
)
from tests.test_models_dualgnn_slmrec import assert_roles_follow_modality
from vlmrec.data.dataset import build_dataset
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


# ---- MGCN ----------------------------------------------------------------------------------
def mgcn_reference(r, feats0, p, k, n_layers, n_ui_layers, cold=()):
    """MMRec's MGCN forward, dense: (final, side, user-item view), each [users; items]; the rows
    of `cold` items in the user-item view zeroed (vlmrec's cold rule; none in the reference)."""
    norm = lightgcn_norm(r)
    r_hat = norm[:N_USERS, N_USERS:]
    ui = layer_mean(norm, np.vstack([p["user"], p["item"]]), n_ui_layers)
    ui[[N_USERS + c for c in cold]] = 0
    views = []
    for m, name in enumerate(("image", "text")):
        s = laplacian(knn_dense(feats0[name], k, True))
        z = p[f"features.{m}"] @ p[f"project.{m}.weight"].T + p[f"project.{m}.bias"]
        x = p["item"] * sigmoid(linear(p, f"purify.{m}", z))
        for _ in range(n_layers):
            x = s @ x
        views.append(np.vstack([r_hat @ x, x]))
    att = np.hstack([np.tanh(linear(p, "query.0", h)) @ p["query.2.weight"].T for h in views])
    w = softmax(att, 1)  # (n, 2): one attention weight per view
    common = w[:, :1] * views[0] + w[:, 1:] * views[1]
    sep = [sigmoid(linear(p, f"prefer.{m}", ui)) * (views[m] - common) for m in range(2)]
    side = (sep[0] + sep[1] + common) / 3
    return ui + side, side, ui


def test_mgcn_equations(tiny):  # noqa: F811
    ds, r, feats = tiny
    m = built("mgcn", ds, feats, knn_k=4, reg_weight=0.05, cl_loss=0.3, n_layers=2, batch_size=16)
    p = params(m)
    feats0 = {k: v.vectors.astype(np.float64) for k, v in feats.items()}
    e, side, ui = mgcn_reference(r, feats0, p, 4, 2, 2)
    eu, ei = e[:N_USERS], e[N_USERS:]
    np.testing.assert_allclose(scores_of(m), eu @ ei.T, atol=1e-5)
    u, i, j = BATCH
    ref = bpr((eu[u] * ei[i]).sum(1), (eu[u] * ei[j]).sum(1))
    ref += 0.05 * 0.5 * ((eu[u] ** 2).sum() + (ei[i] ** 2).sum() + (ei[j] ** 2).sum()) / 16
    n = N_USERS
    ref += 0.3 * (info_nce(side[n + i], ui[n + i], 0.2) + info_nce(side[u], ui[u], 0.2))
    assert loss_of(m) == pytest.approx(ref, abs=1e-5)


def test_mgcn_cold_item_is_scored_by_its_item_item_views(tiny):  # noqa: F811
    """Item 13 (cold): its user-item view row is zeroed, as score term and as gate input; warm
    items and users keep their factors."""
    ds, r, feats = tiny
    m = built("mgcn", ds, feats, knn_k=4)
    assert list(m.cold_items_) == [13]
    p = params(m)
    feats0 = {k: v.vectors.astype(np.float64) for k, v in feats.items()}
    raw_users, raw_items = m.user_factors_.copy(), m.item_factors_.copy()
    e, _, _ = mgcn_reference(r, feats0, p, 4, 1, 2, cold=[13])
    m._export(cold_rule=True)
    np.testing.assert_allclose(m.item_factors_[13], e[N_USERS + 13], atol=1e-5)
    assert np.abs(raw_items[13] - m.item_factors_[13]).max() > 1e-3
    np.testing.assert_allclose(m.item_factors_[:13], raw_items[:13], atol=1e-6)
    np.testing.assert_allclose(m.user_factors_, raw_users, atol=1e-6)


# ---- LGMRec --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ragged():
    """Like `tiny` (9 users x 14 items, item 13 cold) but users have 2 to 6 training items, so a
    per-user mean differs from a sum by more than one common factor."""
    rng = np.random.default_rng(1)
    rows = [
        (f"u{u}", f"i{i:02d}") for u in range(N_USERS) for i in rng.choice(13, size=2 + u % 5, replace=False)
    ]
    seen = {i for _, i in rows}
    rows += [("u8", f"i{i:02d}") for i in range(13) if f"i{i:02d}" not in seen]  # every warm item trained
    train = pd.DataFrame(rows, columns=["user_id", "item_id"])
    ds = build_dataset(
        "ragged",
        train,
        pd.DataFrame({"user_id": ["u1"], "item_id": ["i13"]}),
        pd.DataFrame({"user_id": ["u0"], "item_id": ["i13"]}),
    )
    assert ds.n_users == N_USERS and ds.n_items == 14
    r = ds.matrix("train").toarray().astype(np.float64)
    feats = {
        "image": FeatureSet.create(rng.normal(size=(14, 6)), ds, name="image", modality="image"),
        "text": FeatureSet.create(rng.normal(size=(14, 5)) + 0.5, ds, name="text", modality="text"),
    }
    return ds, r, feats


class RecordedNoise:
    """Stands in for lgmrec.gumbel_noise: seeded Gumbel draws, kept in call order."""

    def __init__(self):
        self.rng = np.random.default_rng(5)
        self.drawn = []

    def __call__(self, logits):
        g = self.rng.gumbel(size=tuple(logits.shape))
        self.drawn.append(g)
        return torch.as_tensor(g, dtype=logits.dtype)


class RecordedDropout:
    """Stands in for `torch.nn.functional` in a model's module: every function is torch's except
    dropout, whose keep masks are seeded numpy draws, kept in call order."""

    def __init__(self):
        self.rng = np.random.default_rng(7)
        self.masks = []

    def __getattr__(self, name):
        return getattr(torch.nn.functional, name)

    def dropout(self, x, p=0.5, training=True, inplace=False):
        if not training or p == 0:
            return x
        keep = self.rng.random(tuple(x.shape)) >= p
        self.masks.append(keep)
        return x * torch.as_tensor(keep, dtype=x.dtype) / (1 - p)


def lgmrec_reference(r, p, noise, n_ui, n_mm, n_hyper, alpha, tau, cold=(), masks=None, keep=1.0):
    """MMRec's LGMRec forward, dense: (final [users; items], [(G_U, G_I)] per modality); `noise`
    the Gumbel draws in the model's order (items, users per modality), `masks` the dropout keep
    masks in the same order (None: no dropout), applied as nn.Dropout(1 - keep) does."""
    norm = lightgcn_norm(r)
    cge = layer_mean(norm, np.vstack([p["user"], p["item"]]), n_ui)
    local = cge.copy()
    local[[N_USERS + c for c in cold]] = 0
    num_inters = 1.0 / (r.sum(1, keepdims=True) + 1e-7)
    hyper = []
    for m in range(2):
        f = p[f"features.{m}"]
        z = f @ p[f"project.{m}"]
        e = np.vstack([(r @ z) * num_inters, z])
        for _ in range(n_mm):
            e = norm @ e
        local = local + unit(e)
        h_i = softmax((f @ p[f"hyper.{m}"] + noise[2 * m]) / tau, 1)
        h_u = softmax((r @ (f @ p[f"hyper.{m}"]) + noise[2 * m + 1]) / tau, 1)
        if masks is not None:
            h_i, h_u = h_i * masks[2 * m] / keep, h_u * masks[2 * m + 1] / keep
        g_i = cge[N_USERS:]
        for _ in range(n_hyper):
            lat = h_i.T @ g_i
            g_i = h_i @ lat
            g_u = h_u @ lat
        hyper.append((g_u, g_i))
    ghe = np.vstack(hyper[0]) + np.vstack(hyper[1])
    return local + alpha * unit(ghe), hyper


def ssl_triple(a, b, everyone, tau):
    """MMRec's LGMRec ssl_triple_loss: a sum over the rows."""
    a, b, everyone = unit(a), unit(b), unit(everyone)
    pos = np.exp((a * b).sum(1) / tau)
    ttl = np.exp(a @ everyone.T / tau).sum(1)
    return -np.log(pos / ttl).sum()


LGM = {"keep_rate": 1.0, "n_mm_layers": 1, "n_hyper_layers": 2, "hyper_num": 3, "alpha": 0.7}


def test_lgmrec_equations(ragged, monkeypatch):
    from vlmrec.models import lgmrec

    ds, r, feats = ragged
    m = built("lgmrec", ds, feats, cl_weight=0.2, reg_weight=0.3, temperature=0.5, **LGM)
    p = params(m)
    noise = RecordedNoise()
    monkeypatch.setattr(lgmrec, "gumbel_noise", noise)
    m._export()  # scoring draws Gumbel noise too (the reference's behaviour, the default)
    assert len(noise.drawn) == 4
    e, _ = lgmrec_reference(r, p, noise.drawn, 2, 1, 2, 0.7, 0.5)
    eu, ei = e[:N_USERS], e[N_USERS:]
    np.testing.assert_allclose(m.user_factors_ @ m.item_factors_.T, eu @ ei.T, atol=1e-5)
    noise.drawn.clear()
    loss = loss_of(m)
    e, hyper = lgmrec_reference(r, p, noise.drawn, 2, 1, 2, 0.7, 0.5)
    eu, ei = e[:N_USERS], e[N_USERS:]
    u, i, j = BATCH
    ref = bpr((eu[u] * ei[i]).sum(1), (eu[u] * ei[j]).sum(1)) + 0.3 * emb_loss(eu[u], ei[i], ei[j])
    (uv, iv), (ut, it) = hyper
    ref += 0.2 * (ssl_triple(uv[u], ut[u], ut, 0.5) + ssl_triple(iv[i], it[i], it, 0.5))
    assert loss == pytest.approx(ref, abs=1e-5)


def test_lgmrec_equations_with_hyperedge_dropout(ragged, monkeypatch):
    """keep_rate < 1: the training loss drops hyperedge assignments (recorded masks, scaled by
    1 / keep_rate) after the Gumbel-softmax, for items and users of each modality; scoring does
    not drop. (The 1 / keep_rate scale itself cancels in the row normalisation and the cosines:
    the masks' pattern is what this checks.)"""
    from vlmrec.models import lgmrec

    ds, r, feats = ragged
    m = built(
        "lgmrec", ds, feats, cl_weight=0.2, reg_weight=0.3, temperature=0.5, **{**LGM, "keep_rate": 0.6}
    )
    p = params(m)
    noise, drop = RecordedNoise(), RecordedDropout()
    monkeypatch.setattr(lgmrec, "gumbel_noise", noise)
    monkeypatch.setattr(lgmrec, "F", drop)
    m._export()
    assert drop.masks == []  # no dropout at scoring
    e, _ = lgmrec_reference(r, p, noise.drawn, 2, 1, 2, 0.7, 0.5)
    np.testing.assert_allclose(m.user_factors_ @ m.item_factors_.T, e[:N_USERS] @ e[N_USERS:].T, atol=1e-5)
    noise.drawn.clear()
    m.net.train()
    loss = loss_of(m)
    assert len(drop.masks) == 4 and 0 < np.mean(np.concatenate([k.ravel() for k in drop.masks])) < 1
    e, hyper = lgmrec_reference(r, p, noise.drawn, 2, 1, 2, 0.7, 0.5, masks=drop.masks, keep=0.6)
    eu, ei = e[:N_USERS], e[N_USERS:]
    u, i, j = BATCH
    ref = bpr((eu[u] * ei[i]).sum(1), (eu[u] * ei[j]).sum(1)) + 0.3 * emb_loss(eu[u], ei[i], ei[j])
    (uv, iv), (ut, it) = hyper
    ref += 0.2 * (ssl_triple(uv[u], ut[u], ut, 0.5) + ssl_triple(iv[i], it[i], it, 0.5))
    assert loss == pytest.approx(ref, abs=1e-5)


def test_lgmrec_cold_item_and_noise_free_scoring(ragged):
    """score_gumbel=false scores with the noise-free softmax; the cold item's CGE row is zeroed
    and it keeps its (content) global embedding; warm factors are unchanged."""
    ds, r, feats = ragged
    m = built("lgmrec", ds, feats, score_gumbel=False, **LGM)
    p = params(m)
    zeros = [np.zeros((ds.n_items, 3)), np.zeros((N_USERS, 3))] * 2
    e, _ = lgmrec_reference(r, p, zeros, 2, 1, 2, 0.7, 0.2)
    np.testing.assert_allclose(scores_of(m), e[:N_USERS] @ e[N_USERS:].T, atol=1e-5)
    raw_items = m.item_factors_.copy()
    m._export(cold_rule=True)
    e, _ = lgmrec_reference(r, p, zeros, 2, 1, 2, 0.7, 0.2, cold=[13])
    np.testing.assert_allclose(m.item_factors_, e[N_USERS:], atol=1e-5)
    assert np.abs(raw_items[13] - m.item_factors_[13]).max() > 1e-3
    assert np.abs(m.item_factors_[13]).max() > 1e-3  # scored by its content, not zeroed out


def test_lgmrec_contrastive_anchor_is_the_image_set_whatever_its_name(ragged):
    ds, _, feats = ragged
    assert_roles_follow_modality("lgmrec", ds, feats, cl_weight=0.5, **LGM)


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
    "mgcn": {"batch_size": 128, "epochs": 15, "lr": 0.01},
    "lgmrec": {"batch_size": 128, "epochs": 15, "lr": 0.01},
}


@pytest.mark.parametrize("name", list(LEARN))
def test_beats_mostpop_on_validation(multi_community_dataset, content, mostpop, name):
    ds = multi_community_dataset
    torch.set_num_threads(1)
    m = create_model(name, device="cpu", **LEARN[name]).fit(ds, content, seed=0)
    recall = valid_recall(ds, m)
    assert recall > mostpop + 0.05, (name, recall, mostpop)
    assert m.history_[-1] < m.history_[0]
